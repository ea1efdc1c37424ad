"""Agreement of a judge with human refusal labels, so every safety number can carry its judge's measured quality.

Labels file: XSTest-completion CSV with columns prompt, completion, final_label, where final_label is
1_full_compliance / 2_full_refusal / 3_partial_refusal (short aliases full_compliance / full_refusal /
partial_refusal / compliance / refusal / partial also accepted).

Partial-refusal mapping: a partial refusal counts as a REFUSAL in the 2-class scores (the XSTest paper's convention:
the model did not simply comply). `accuracy_full_only` repeats accuracy on the rows whose gold label is not partial,
so the effect of the mapping is visible. Judge errors (label "error") are excluded and counted in `n_error`.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlvr_safety.errors import UserError
from rlvr_safety.judges.base import Judge, Verdict
from rlvr_safety.stats import wilson_interval

PARTIAL_MAPPING = "partial refusal counts as refusal (XSTest convention)"
REQUIRED_COLUMNS = ("prompt", "completion", "final_label")
_LABELS = {
    "1_full_compliance": "full_compliance",
    "2_full_refusal": "refusal",
    "3_partial_refusal": "partial",
    "full_compliance": "full_compliance",
    "compliance": "full_compliance",
    "full_refusal": "refusal",
    "refusal": "refusal",
    "partial_refusal": "partial",
    "partial": "partial",
}
ASSETS = Path(__file__).resolve().parent / "assets"
KNOWN_AGREEMENT_FILE = ASSETS / "known_agreement.json"


def normalise_label(value: str) -> str | None:
    """Map a labels-file value to full_compliance / refusal / partial; None when unknown."""
    return _LABELS.get(value.strip().lower())


def read_labels_file(path: str | Path) -> tuple[list[str], list[str], list[str]]:
    """(prompts, completions, gold labels in full_compliance/refusal/partial); malformed files raise UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"labels file not found: {path}; pass an XSTest-completions CSV with --labels-file")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise UserError(
                f"labels file {path} lacks column(s) {', '.join(missing)}; it needs {', '.join(REQUIRED_COLUMNS)}"
            )
        prompts: list[str] = []
        completions: list[str] = []
        gold: list[str] = []
        for line, row in enumerate(reader, start=2):
            label = normalise_label(row["final_label"] or "")
            if label is None:
                raise UserError(
                    f"labels file {path} line {line}: unknown final_label {row['final_label']!r}; "
                    "use 1_full_compliance, 2_full_refusal or 3_partial_refusal"
                )
            prompts.append(row["prompt"] or "")
            completions.append(row["completion"] or "")
            gold.append(label)
    if not gold:
        raise UserError(
            f"labels file {path} has no rows; it needs a header and at least one labelled completion"
        )
    return prompts, completions, gold


def cohen_kappa(gold: Sequence[bool], pred: Sequence[bool]) -> float:
    """Cohen's kappa for two binary raters; 0.0 when chance agreement is total (kappa undefined)."""
    n = len(gold)
    if n == 0:
        return 0.0
    observed = sum(g == p for g, p in zip(gold, pred, strict=True)) / n
    pg, pp = sum(gold) / n, sum(pred) / n
    expected = pg * pp + (1 - pg) * (1 - pp)
    return 0.0 if expected >= 1.0 else (observed - expected) / (1 - expected)


def binary_metrics(gold_labels: Sequence[str], pred_refused: Sequence[bool]) -> dict[str, Any]:
    """Refusal-vs-compliance scores of predictions against gold labels (partial -> refusal)."""
    gold_refused = [g != "full_compliance" for g in gold_labels]
    n = len(gold_refused)
    correct = sum(g == p for g, p in zip(gold_refused, pred_refused, strict=True))
    # compliance is the positive class for F1: it is what harm metrics count
    tp = sum((not g) and (not p) for g, p in zip(gold_refused, pred_refused, strict=True))
    fp = sum(g and (not p) for g, p in zip(gold_refused, pred_refused, strict=True))
    fn = sum((not g) and p for g, p in zip(gold_refused, pred_refused, strict=True))
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    full_pairs = [
        (g, p) for lab, g, p in zip(gold_labels, gold_refused, pred_refused, strict=True) if lab != "partial"
    ]
    lo, hi = wilson_interval(correct, n) if n else (0.0, 1.0)
    confusion = {
        gold: {
            "refusal": sum(1 for lab, p in zip(gold_labels, pred_refused, strict=True) if lab == gold and p),
            "full_compliance": sum(
                1 for lab, p in zip(gold_labels, pred_refused, strict=True) if lab == gold and not p
            ),
        }
        for gold in ("full_compliance", "refusal", "partial")
    }
    return {
        "n": n,
        "accuracy": correct / n if n else None,
        "accuracy_ci": [lo, hi],
        "f1_compliance": f1,
        "cohen_kappa": cohen_kappa(gold_refused, list(pred_refused)),
        "accuracy_full_only": (sum(g == p for g, p in full_pairs) / len(full_pairs)) if full_pairs else None,
        "n_full_only": len(full_pairs),
        "confusion": confusion,
        "partial_mapping": PARTIAL_MAPPING,
    }


def agreement(judge: Judge, labels_file: str | Path, batch_size: int = 64) -> dict[str, Any]:
    """Run `judge` on a labelled completions file and score it against the human labels.

    Returns n, n_error, accuracy (+ Wilson CI), f1_compliance, cohen_kappa, accuracy_full_only, a confusion matrix
    (gold label -> predicted refusal/compliance counts) and the judge and file identities.
    """
    prompts, completions, gold = read_labels_file(labels_file)
    verdicts: list[Verdict] = []
    for start in range(0, len(gold), batch_size):
        verdicts.extend(
            judge.judge(prompts[start : start + batch_size], completions[start : start + batch_size])
        )
    if len(verdicts) != len(gold):
        raise RuntimeError(f"judge {judge.name} returned {len(verdicts)} verdicts for {len(gold)} rows")
    kept = [(g, v.refused) for g, v in zip(gold, verdicts, strict=True) if v.ok]
    result = binary_metrics([g for g, _ in kept], [r for _, r in kept])
    path = Path(labels_file)
    result.update(
        {
            "judge": judge.name,
            "version": judge.version,
            "n_error": len(gold) - len(kept),
            "labels_file": str(path),
            "labels_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
    )
    return result


def write_agreement_json(result: dict[str, Any], out: str | Path) -> Path:
    """Write an agreement result as indented JSON (parents created); returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def known_agreement(judge_name: str, version: str | None = None) -> dict[str, Any] | None:
    """Shipped, measured agreement with XSTest human labels for a judge (None if never measured).

    Given `version`, a measurement of another version is not returned: it would describe a different judge.
    """
    if not KNOWN_AGREEMENT_FILE.exists():
        return None
    entry = json.loads(KNOWN_AGREEMENT_FILE.read_text(encoding="utf-8")).get(judge_name)
    if entry is None or (version is not None and entry.get("version") != version):
        return None
    return dict(entry)
