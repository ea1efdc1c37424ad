"""How well a judge holds up on sources it was not fitted to: leave-one-source-out and per-source agreement.

A *source* is one model's outputs (or one attack on one target model). Cross-validation that mixes a source's rows
into training and test folds measures in-distribution fit, which overstates what a user gets on a new model; here
every prediction for a source comes from a judge fitted without any of that source's rows.

numpy only (plus the stats helpers); the fitting itself is passed in, so tests can run it on synthetic data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from rlvr_safety.judges.binary_metrics import binary_metrics
from rlvr_safety.stats import PairedCounts, mcnemar_exact, paired_difference_ci

FitPredict = Callable[[np.ndarray, np.ndarray], np.ndarray]


def leave_one_source_out(sources: Sequence[str]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(held-out source, train indices, test indices) for every source, in first-seen order."""
    arr = np.asarray(sources)
    if len(set(arr.tolist())) < 2:
        raise ValueError("leave-one-source-out needs at least two sources")
    for source in dict.fromkeys(arr.tolist()):
        test = np.flatnonzero(arr == source)
        train = np.flatnonzero(arr != source)
        yield source, train, test


def loso_predict(sources: Sequence[str], fit_predict: FitPredict) -> np.ndarray:
    """Out-of-source predictions: fit_predict(train_idx, test_idx) -> predictions for test_idx, per source."""
    pred: np.ndarray | None = None
    for _, train, test in leave_one_source_out(sources):
        part = np.asarray(fit_predict(train, test))
        if part.shape[0] != len(test):
            raise ValueError(f"fit_predict returned {part.shape[0]} predictions for {len(test)} rows")
        if pred is None:
            pred = np.zeros((len(sources), *part.shape[1:]), dtype=part.dtype)
        pred[test] = part
    assert pred is not None
    return pred


def source_weights(sources: Sequence[str]) -> np.ndarray:
    """Sample weights that give every source the same total weight (mean weight 1 over the rows)."""
    arr = np.asarray(sources)
    _, inverse, counts = np.unique(arr, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inverse]
    return w * (len(arr) / w.sum())


def agreement_by_source(
    gold_labels: Sequence[str], pred_refused: Sequence[bool], sources: Sequence[str]
) -> dict[str, Any]:
    """Per-source and pooled 2-class agreement (binary_metrics each), plus the unweighted mean over sources."""
    gold = list(gold_labels)
    pred = [bool(p) for p in pred_refused]
    src = list(sources)
    if not len(gold) == len(pred) == len(src):
        raise ValueError(f"lengths differ: {len(gold)} labels, {len(pred)} predictions, {len(src)} sources")
    per_source: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(src):
        idx = [i for i, s in enumerate(src) if s == name]
        per_source[name] = binary_metrics([gold[i] for i in idx], [pred[i] for i in idx])
    pooled = binary_metrics(gold, pred)
    accs = [m["accuracy"] for m in per_source.values() if m["accuracy"] is not None]
    return {
        "pooled": pooled,
        "per_source": per_source,
        "macro_accuracy": float(np.mean(accs)) if accs else None,
        "n_sources": len(per_source),
    }


def paired_comparison(
    gold_labels: Sequence[str], base_refused: Sequence[bool], new_refused: Sequence[bool]
) -> dict[str, Any]:
    """Accuracy of `new` minus `base` on the same rows: difference, Newcombe 95% interval, exact McNemar p."""
    gold = [g != "full_compliance" for g in gold_labels]
    base_ok = [g == bool(b) for g, b in zip(gold, base_refused, strict=True)]
    new_ok = [g == bool(n) for g, n in zip(gold, new_refused, strict=True)]
    counts = PairedCounts(
        both=sum(b and n for b, n in zip(base_ok, new_ok, strict=True)),
        only_base=sum(b and not n for b, n in zip(base_ok, new_ok, strict=True)),
        only_model=sum(n and not b for b, n in zip(base_ok, new_ok, strict=True)),
        neither=sum(not b and not n for b, n in zip(base_ok, new_ok, strict=True)),
    )
    n = counts.n
    lo, hi = paired_difference_ci(counts) if n else (-1.0, 1.0)
    return {
        "n": n,
        "only_base_correct": counts.only_base,
        "only_new_correct": counts.only_model,
        "difference": (counts.only_model - counts.only_base) / n if n else None,
        "difference_ci": [lo, hi],
        "mcnemar_p": mcnemar_exact(counts.only_base, counts.only_model),
    }



def recommend_default(pooled: dict[str, Any], per_source: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Which judge should be the default, from `paired_comparison` results of learned (new) vs keyword (base).

    The learned judge is recommended only if its pooled accuracy beats keyword's with the paired 95% interval of
    the difference above 0 AND it is below keyword on no source (point estimates). Otherwise keyword: a learned
    judge that does not beat the transparent baseline on outputs it was not fitted to adds cost and opacity only.
    """
    lo = pooled["difference_ci"][0]
    worse = sorted(name for name, c in per_source.items() if c["difference"] is not None and c["difference"] < 0)
    if lo > 0 and not worse:
        return {
            "judge": "learned",
            "why": f"pooled leave-one-source-out accuracy above keyword's by {pooled['difference']:+.3f} "
            f"(95% interval lower limit {lo:+.3f}) and below it on no source",
        }
    reasons = []
    if lo <= 0:
        reasons.append(
            f"pooled difference {pooled['difference']:+.3f} has a 95% interval reaching {lo:+.3f} (not above 0)"
        )
    if worse:
        reasons.append(f"below keyword on {len(worse)} source(s): {', '.join(worse)}")
    return {"judge": "keyword", "why": "learned does not beat keyword out of source: " + "; ".join(reasons)}
