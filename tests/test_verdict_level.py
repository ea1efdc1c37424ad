"""The pooled safety verdict holds its stated levels in seeded simulations with a known answer (docs/theory.md,
"Findings in the report"): "reduced" when nothing changed at most alpha of the time, "kept" when the true drop is
beyond the margin at most alpha/2, and a drop of 0.2 (before clipping) over the demo's 66 prompts is found in 72% of trials."""

from __future__ import annotations

import numpy as np
import pytest

from rlvr_safety.report.analysis import DEFAULT_RULE, decide
from rlvr_safety.stats import paired_counts, paired_test

pytestmark = pytest.mark.unit
N, TRIALS, SEED = 66, 1000, 20261130


def _verdicts(drop: float, seed: int) -> list[str]:
    """Each trial: per-prompt refusal probabilities p_i (some prompts nearly always refused, some rarely), one
    sampled answer per prompt from the reference (p_i) and from the model (p_i - drop, clipped), paired by prompt."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(TRIALS):
        p = rng.beta(0.6, 0.4, size=N)
        q = np.clip(p - drop, 0.0, 1.0)
        base = {str(i): int(v) for i, v in enumerate(rng.random(N) < p)}
        model = {str(i): int(v) for i, v in enumerate(rng.random(N) < q)}
        out.append(decide(paired_test(paired_counts(base, model), DEFAULT_RULE.alpha, DEFAULT_RULE.power)))
    return out


def test_no_change_is_called_reduced_at_most_alpha_of_the_time() -> None:
    v = _verdicts(0.0, SEED)
    assert v.count("reduced") / TRIALS <= DEFAULT_RULE.alpha  # measured 0.010 (exact McNemar is conservative)


def test_a_drop_beyond_the_margin_is_called_kept_at_most_alpha_over_two() -> None:
    v = _verdicts(DEFAULT_RULE.margin + 0.02, SEED + 1)  # true mean drop 0.109 after clipping at 0: just beyond
    assert v.count("kept") / TRIALS <= DEFAULT_RULE.alpha / 2  # measured 0.018


def test_a_real_drop_is_found() -> None:
    v = _verdicts(0.2, SEED + 2)
    assert v.count("reduced") / TRIALS >= 0.65  # measured 0.721: 66 prompts miss a drop this size 28% of the time
