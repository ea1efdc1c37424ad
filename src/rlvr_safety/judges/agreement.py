"""Agreement of a judge with labelled completions, so every safety number can carry its judge's measured quality.

Labels file: any CSV with a prompt column, a completion column and a label column. By default the XSTest
completion format: columns prompt, completion, final_label, where final_label is 1_full_compliance /
2_full_refusal / 3_partial_refusal (short aliases full_compliance / full_refusal / partial_refusal / compliance /
refusal / partial also accepted). Another label column and another value mapping can be named
(`label_column`, `label_map`, e.g. "yes=refusal,no=full_compliance"), and an optional source column gives
per-source numbers beside the pooled one.

Partial-refusal mapping: a partial refusal counts as a REFUSAL in the 2-class scores (the XSTest paper's convention:
the model did not simply comply). `accuracy_full_only` repeats accuracy on the rows whose gold label is not partial,
so the effect of the mapping is visible. Judge errors (label "error") are excluded and counted in `n_error`.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr_safety.errors import UserError
from rlvr_safety.judges.base import Judge, Verdict
from rlvr_safety.judges.binary_metrics import PARTIAL_MAPPING, binary_metrics, cohen_kappa  # noqa: F401
from rlvr_safety.judges.generalisation import agreement_by_source

DEFAULT_LABEL_COLUMN = "final_label"
REQUIRED_COLUMNS = ("prompt", "completion", DEFAULT_LABEL_COLUMN)
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


def parse_label_map(spec: str | dict[str, str] | None) -> dict[str, str] | None:
    """"value=class,value=class" (or a dict) -> {lower-cased value: class}; classes may use the aliases above.

    None means the default XSTest mapping. Raises UserError on a malformed pair or an unknown class.
    """
    if spec is None or spec == "":
        return None
    pairs = list(spec.items()) if isinstance(spec, dict) else []
    if isinstance(spec, str):
        for part in spec.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise UserError(
                    f"label map entry {part.strip()!r} has no '='; write value=class pairs, e.g. "
                    "'yes=refusal,no=full_compliance'"
                )
            value, _, target = part.rpartition("=")
            pairs.append((value, target))
    out: dict[str, str] = {}
    for value, target in pairs:
        cls = normalise_label(str(target))
        if cls is None:
            raise UserError(
                f"label map sends {str(value).strip()!r} to unknown class {str(target).strip()!r}; "
                "use full_compliance, refusal or partial"
            )
        out[str(value).strip().lower()] = cls
    if not out:
        raise UserError("label map is empty; write value=class pairs, e.g. 'yes=refusal,no=full_compliance'")
    return out


@dataclass(frozen=True)
class LabelledFile:
    """A labels file read into parallel lists; `sources` is None unless a source column was named."""

    prompts: list[str]
    completions: list[str]
    gold: list[str]
    sources: list[str] | None = None


def read_labelled_csv(
    path: str | Path,
    label_column: str = DEFAULT_LABEL_COLUMN,
    label_map: str | dict[str, str] | None = None,
    source_column: str | None = None,
    prompt_column: str = "prompt",
    completion_column: str = "completion",
) -> LabelledFile:
    """Read any labelled-completions CSV; malformed files, unknown columns and unknown labels raise UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"labels file not found: {path}; pass a CSV of labelled completions with --labels-file")
    mapping = parse_label_map(label_map)
    required = [prompt_column, completion_column, label_column] + ([source_column] if source_column else [])
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in required if c not in columns]
        if missing:
            raise UserError(
                f"labels file {path} lacks column(s) {', '.join(missing)}; it needs {', '.join(required)} "
                f"(it has {', '.join(columns) or 'no header'}; name others with --label-column / --source-column)"
            )
        prompts: list[str] = []
        completions: list[str] = []
        gold: list[str] = []
        sources: list[str] = []
        for line, row in enumerate(reader, start=2):
            raw = row[label_column] or ""
            label = mapping.get(raw.strip().lower()) if mapping is not None else normalise_label(raw)
            if label is None:
                known = ", ".join(sorted(mapping)) if mapping is not None else (
                    "1_full_compliance, 2_full_refusal or 3_partial_refusal (or pass --label-map)"
                )
                raise UserError(f"labels file {path} line {line}: unknown {label_column} {raw!r}; use {known}")
            prompts.append(row[prompt_column] or "")
            completions.append(row[completion_column] or "")
            gold.append(label)
            if source_column:
                sources.append(row[source_column] or "")
    if not gold:
        raise UserError(
            f"labels file {path} has no rows; it needs a header and at least one labelled completion"
        )
    return LabelledFile(prompts, completions, gold, sources if source_column else None)


def read_labels_file(path: str | Path) -> tuple[list[str], list[str], list[str]]:
    """(prompts, completions, gold labels) of an XSTest-format file; see `read_labelled_csv` for other formats."""
    f = read_labelled_csv(path)
    return f.prompts, f.completions, f.gold


def agreement(
    judge: Judge,
    labels_file: str | Path,
    batch_size: int = 64,
    label_column: str = DEFAULT_LABEL_COLUMN,
    label_map: str | dict[str, str] | None = None,
    source_column: str | None = None,
) -> dict[str, Any]:
    """Run `judge` on a labelled completions file and score it against the labels.

    Returns n, n_error, accuracy (+ Wilson CI), f1_compliance, cohen_kappa, accuracy_full_only, a confusion matrix
    (gold label -> predicted refusal/compliance counts) and the judge and file identities; with `source_column`,
    also `per_source` (the same scores per source value) and `macro_accuracy` (their unweighted mean).
    """
    data = read_labelled_csv(labels_file, label_column, label_map, source_column)
    verdicts: list[Verdict] = []
    for start in range(0, len(data.gold), batch_size):
        verdicts.extend(
            judge.judge(data.prompts[start : start + batch_size], data.completions[start : start + batch_size])
        )
    if len(verdicts) != len(data.gold):
        raise RuntimeError(f"judge {judge.name} returned {len(verdicts)} verdicts for {len(data.gold)} rows")
    ok = [v.ok for v in verdicts]
    gold = [g for g, k in zip(data.gold, ok, strict=True) if k]
    refused = [v.refused for v in verdicts if v.ok]
    result = binary_metrics(gold, refused)
    if data.sources is not None:
        sources = [s for s, k in zip(data.sources, ok, strict=True) if k]
        by_source = agreement_by_source(gold, refused, sources)
        result["per_source"] = by_source["per_source"]
        result["macro_accuracy"] = by_source["macro_accuracy"]
    path = Path(labels_file)
    result.update(
        {
            "judge": judge.name,
            "version": judge.version,
            "n_error": len(data.gold) - len(gold),
            "labels_file": str(path),
            "labels_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "label_column": label_column,
            "label_map": parse_label_map(label_map) or "XSTest final_label (default)",
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
    """Shipped, measured agreement of a judge with labelled sources it was not fitted to (None if never measured).

    The pooled leave-one-source-out numbers are at top level (accuracy, accuracy_ci, n, ...), per-source ones
    under "per_source"; see scripts/train_learned_judge.py.

    Given `version`, a measurement of another version is not returned: it would describe a different judge.
    """
    if not KNOWN_AGREEMENT_FILE.exists():
        return None
    entry = json.loads(KNOWN_AGREEMENT_FILE.read_text(encoding="utf-8")).get(judge_name)
    if entry is None or (version is not None and entry.get("version") != version):
        return None
    return dict(entry)
