"""Certificate: floors follow the bound formulas, are sound on known distributions, and flag vacuity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rlvr_safety.theory import bernstein_bound, certify, check_measured, kl, tilt
from rlvr_safety.theory.certificate import kl_upper_limit, mean_lower_limit, variance_upper_limit


def _paths(seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reference p and policy q over 5 single-token paths; sequence log-ratios of q-samples; s_ref samples."""
    rng = np.random.default_rng(seed)
    p = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    s = np.array([1.0, 0.9, 0.6, 0.2, 0.0])
    q, _ = tilt(p, np.array([0.0, 0.2, 0.5, 1.0, 1.0]), 1.0)  # RLVR pushes toward the unsafe paths
    y = rng.choice(5, size=n, p=q)
    s_ref = s[rng.choice(5, size=n, p=p)]
    return p, q, np.log(q[y]) - np.log(p[y]), s_ref


def test_floors_follow_formulas_and_are_sound() -> None:
    p, q, lr, s_ref = _paths(0)
    c = certify(s_ref, seq_log_ratios=lr, n_resamples=300)
    s = np.array([1.0, 0.9, 0.6, 0.2, 0.0])
    true_safety = float(q @ s)
    assert c.kl_k1 == pytest.approx(kl(q, p), abs=0.02)
    assert c.kl_k1_ci[0] <= kl(q, p) <= c.kl_k1_ci[1]
    assert kl(q, p) <= c.kl_upper and c.kl_upper == pytest.approx(kl(q, p), abs=0.05)
    assert c.kl_k3 == pytest.approx(kl(q, p), abs=0.03) and c.k3_level == "sequence"
    assert c.s_ref == pytest.approx(float(s_ref.mean()))
    assert c.s_ref_lower < c.s_ref and c.s_ref_lower == pytest.approx(mean_lower_limit(s_ref, 0.025))
    assert c.s_ref_ci[0] <= c.s_ref <= c.s_ref_ci[1]
    assert c.var_ref == pytest.approx(float(s_ref.var(ddof=1)))
    assert c.var_ref_upper == pytest.approx(variance_upper_limit(c.s_ref_lower))  # L(1 - L) once L >= 1/2
    b = c.bounds
    assert b["pinsker"].value == pytest.approx(math.sqrt(c.kl / 2))
    assert b["pinsker"].value_conservative == pytest.approx(math.sqrt(c.kl_upper / 2))
    assert b["bretagnolle_huber"].value == pytest.approx(math.sqrt(1 - math.exp(-c.kl)))
    assert b["bernstein"].value_conservative == pytest.approx(bernstein_bound(c.var_ref_upper, c.kl_upper))
    assert b["chi2"].value == pytest.approx(math.sqrt(c.var_ref * c.chi2))
    assert not b["chi2"].certified and all(b[k].certified for k in ("pinsker", "bretagnolle_huber", "bernstein"))
    for r in b.values():
        assert r.floor == pytest.approx(max(0.0, c.s_ref - r.value))
        assert r.floor_conservative == pytest.approx(max(0.0, c.s_ref_lower - r.value_conservative))
        assert r.floor_conservative <= r.floor
        assert r.floor_conservative <= true_safety  # the certificate holds for this policy
    assert c.floor == max(r.floor_conservative for r in b.values() if r.certified)
    assert c.floor_bound in ("pinsker", "bretagnolle_huber", "bernstein") and not c.vacuous
    assert c.drift_bound == min(r.value_conservative for r in b.values() if r.certified)
    assert c.level == pytest.approx(0.95)
    assert any("TV" in n for n in c.notes)
    d = c.to_dict()
    json.dumps(d, allow_nan=False)
    assert set(d["bounds"]) == {"pinsker", "bretagnolle_huber", "bernstein", "chi2"}
    assert d["floor_bound"] == c.floor_bound and d["level"] == pytest.approx(0.95) and d["vacuous"] is False
    assert "chi2" not in c.bound_values() and "chi2" in c.bound_values(certified_only=False)


def test_all_safe_reference_samples_do_not_certify_everything() -> None:
    # The bug this replaces: 24 safe reference samples gave Var = 0, a chi2 bound of 0 and floor = 1 at any KL.
    c = certify(np.ones(24), seq_log_ratios=np.random.default_rng(3).normal(20.0, 2.0, 24), n_resamples=200)
    assert c.floor == 0.0 and c.vacuous
    assert c.s_ref == 1.0 and c.s_ref_lower == pytest.approx(0.025 ** (1 / 24))  # Clopper-Pearson, k = n
    assert c.var_ref == 0.0 and c.var_ref_upper == pytest.approx(c.s_ref_lower * (1 - c.s_ref_lower))
    # the policy did not move: the floor is the S_ref lower limit, not 1
    same = certify(np.ones(24), seq_log_ratios=np.zeros(24), n_resamples=200)
    assert same.kl_upper == 0.0 and same.floor == pytest.approx(same.s_ref_lower) and same.floor < 1.0


def test_mean_lower_limit_exact_and_valid_for_fractional_scores() -> None:
    assert mean_lower_limit([1.0] * 6, 0.05) == pytest.approx(0.05 ** (1 / 6))  # 0.607
    assert mean_lower_limit([0.0] * 5, 0.05) == 0.0
    from scipy import stats

    assert mean_lower_limit([1, 1, 0, 1, 1, 1, 0, 1], 0.05) == pytest.approx(stats.beta.ppf(0.05, 6, 3))
    # fractional scores: Chernoff-Hoeffding, below the mean, and at least as cautious as Hoeffding's sqrt form
    frac = np.array([0.9, 0.8, 1.0, 0.7, 0.95, 0.85, 0.9, 0.99])
    lo = mean_lower_limit(frac, 0.05)
    assert lo < frac.mean() and lo > frac.mean() - math.sqrt(math.log(1 / 0.05) / (2 * frac.size))
    # coverage by simulation on Beta(8, 2) scores (mean 0.8): misses at most alpha plus Monte Carlo slack
    rng = np.random.default_rng(0)
    misses = sum(mean_lower_limit(rng.beta(8, 2, 12), 0.1) > 0.8 for _ in range(2000))
    assert misses / 2000 <= 0.1 + 0.02


def test_variance_upper_limit() -> None:
    assert variance_upper_limit(0.3) == 0.25
    assert variance_upper_limit(0.9) == pytest.approx(0.09)
    assert variance_upper_limit(1.0) == 0.0


def test_kl_upper_limit_edges() -> None:
    assert math.isinf(kl_upper_limit([0.3], 0.05))
    assert kl_upper_limit([0.2, 0.2, 0.2], 0.05) == pytest.approx(0.2)
    x = np.random.default_rng(4).exponential(0.1, 50)
    assert kl_upper_limit(x, 0.025) > x.mean()


def test_token_level_input_uses_token_k3() -> None:
    rng = np.random.default_rng(1)
    logp = [-rng.random(n) for n in (3, 5, 2, 4)]
    logq = [lp - 0.01 * rng.random(lp.size) for lp in logp]
    c = certify([0.9, 1.0, 0.8], logp=logp, logq=logq, n_resamples=100)
    assert c.k3_level == "token" and c.n_sequences == 4 and c.n_ref == 3
    assert c.kl_k1 == pytest.approx(float(np.mean([np.sum(a - b) for a, b in zip(logp, logq, strict=True)])))


def test_large_kl_is_flagged_vacuous() -> None:
    lr = np.random.default_rng(2).normal(5.0, 0.5, size=500)
    c = certify(np.full(100, 0.8) - np.linspace(0, 0.1, 100), seq_log_ratios=lr, n_resamples=200)
    assert c.bounds["pinsker"].vacuous and c.bounds["pinsker"].floor_conservative == 0.0
    assert c.bounds["bretagnolle_huber"].value < 1 and c.vacuous and c.floor == 0.0
    assert any("vacuous" in n for n in c.notes)
    assert any("Pinsker" in n for n in c.notes)


def test_negative_k1_clipped_with_note() -> None:
    lr = np.array([-0.2, -0.1, 0.05, -0.05])
    c = certify([1.0, 1.0, 0.0, 1.0], seq_log_ratios=lr, n_resamples=100)
    assert c.kl_k1 < 0 and c.kl == 0.0
    assert c.bounds["pinsker"].value == 0.0 and c.bounds["pinsker"].floor == pytest.approx(0.75)
    assert any("only 4 policy samples" in n for n in c.notes)
    assert any("clipped" in n for n in c.notes)


def test_chi2_overflow_is_vacuous_and_serialisable() -> None:
    c = certify([1.0, 0.0], seq_log_ratios=[800.0, 0.0, 0.1], n_resamples=50)
    assert math.isinf(c.chi2_upper) and c.bounds["chi2"].vacuous and not c.bounds["chi2"].certified
    d = c.to_dict()
    assert d["chi2_upper"] is None
    json.dumps(d, allow_nan=False)


def test_certify_input_errors() -> None:
    with pytest.raises(ValueError, match="either"):
        certify([1.0])
    with pytest.raises(ValueError, match="either"):
        certify([1.0], seq_log_ratios=[0.1], logp=[np.array([-1.0])], logq=[np.array([-1.0])])
    with pytest.raises(ValueError, match="both"):
        certify([1.0], logp=[np.array([-1.0])])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        certify([1.5], seq_log_ratios=[0.1])


def test_check_measured() -> None:
    bounds = {"pinsker": 0.1, "chi2": 0.03, "bretagnolle_huber": None}
    out = check_measured(-0.08, (-0.1, -0.05), bounds)
    assert out["pinsker"].within and out["pinsker"].margin == pytest.approx(0.05)
    assert not out["chi2"].within and out["chi2"].margin == pytest.approx(-0.02)
    assert out["bretagnolle_huber"].within and math.isinf(out["bretagnolle_huber"].bound)
    straddle = check_measured(0.2, (-0.01, 0.4), {"chi2": 0.0})
    assert straddle["chi2"].within and straddle["chi2"].measured_abs_lower == 0.0
    json.dumps(out["chi2"].to_dict(), allow_nan=False)
    c = certify([1.0, 0.5, 0.0], seq_log_ratios=[0.1, 0.2], n_resamples=50)
    assert set(check_measured(0.0, (0.0, 0.0), c.bound_values())) == set(c.bounds) - {"chi2"}
    with pytest.raises(ValueError, match="outside"):
        check_measured(0.5, (0.0, 0.1), bounds)
    with pytest.raises(ValueError, match="lo <= hi"):
        check_measured(0.05, (0.1, 0.0), bounds)
    with pytest.raises(ValueError, match="non-negative"):
        check_measured(0.0, (0.0, 0.0), {"x": -1.0})
