"""Estimators converge to exact values on a known token model; bootstrap is seeded and covers the truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlvr_safety.theory import (
    bootstrap_ci,
    chi2_estimate,
    drift,
    forecast_safety,
    sequence_kl,
    sequence_log_ratios,
    tilt,
    token_log_ratios,
)

# A toy "language model": T tokens drawn i.i.d. from a 4-symbol vocabulary; policy PI, reference REF.
PI = np.array([0.4, 0.3, 0.2, 0.1])
REF = np.array([0.3, 0.3, 0.25, 0.15])
T = 3


def _sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tokens = rng.choice(PI.size, size=(n, T), p=PI)
    return np.log(PI)[tokens], np.log(REF)[tokens]


def _within(samples: np.ndarray, truth: float, z: float = 5.0) -> None:
    se = samples.std(ddof=1) / math.sqrt(samples.size)
    assert se < 0.02  # otherwise the check below is toothless
    assert abs(samples.mean() - truth) < z * se, (samples.mean(), truth, se)


def test_kl_estimators_converge_to_exact_sequence_kl() -> None:
    logp, logq = _sample(20000, seed=1)
    est = sequence_kl(logp, logq)
    r = np.log(PI / REF)
    exact_kl = T * float(PI @ r)  # chain rule: sequence KL = sum of token KLs
    _within(est.k1, exact_kl)
    _within(est.k3, exact_kl)
    _within(est.k2, T * float(PI @ (r * r)) / 2)  # k2 is biased; test against its own expectation
    assert np.all(est.k3 >= 0)
    assert est.n_sequences == 20000 and np.all(est.n_tokens == T)
    assert est.k1_mean == pytest.approx(float(est.k1.mean()))


def test_chi2_estimate_converges() -> None:
    logp, logq = _sample(20000, seed=2)
    lr = sequence_log_ratios(logp, logq)
    exact = float(PI @ (PI / REF)) ** T - 1  # E_pi[prod pi/ref] - 1, tokens independent
    ratios = np.exp(lr)
    _within(ratios, exact + 1)
    assert chi2_estimate(lr) == pytest.approx(float(ratios.mean()) - 1, rel=1e-10)


def test_chi2_overflow_is_inf_not_crash() -> None:
    assert math.isinf(chi2_estimate([800.0, 0.0]))
    assert chi2_estimate([-800.0, 0.0]) == pytest.approx(-0.5)
    est = sequence_kl([np.array([-800.0])], [np.array([-0.0])])
    assert math.isinf(est.k3_mean) and est.k1_mean == -800.0


def test_ragged_and_padded_inputs_agree() -> None:
    rng = np.random.default_rng(3)
    lengths = [1, 4, 2, 5]
    logp = [-rng.random(n) for n in lengths]
    logq = [-rng.random(n) for n in lengths]
    ragged = sequence_kl(logp, logq)
    pad_p = np.full((4, 5), np.nan)
    pad_q = np.full((4, 5), np.nan)
    mask = np.zeros((4, 5), dtype=bool)
    for i, n in enumerate(lengths):
        pad_p[i, :n], pad_q[i, :n], mask[i, :n] = logp[i], logq[i], True
    padded = sequence_kl(pad_p, pad_q, mask=mask)
    for name in ("k1", "k2", "k3", "n_tokens"):
        np.testing.assert_allclose(getattr(padded, name), getattr(ragged, name), rtol=1e-12)
    np.testing.assert_allclose(ragged.k1, [float(np.sum(a - b)) for a, b in zip(logp, logq, strict=True)])
    r, m = token_log_ratios(pad_p, pad_q, mask)
    assert np.all(r[~m] == 0) and m.sum() == sum(lengths)
    assert ragged.to_dict()["n_sequences"] == 4


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([np.array([-1.0, -2.0])], [np.array([-1.0])]), "mismatched"),
        ((np.array([[-1.0, np.nan]]), np.array([[-1.0, -1.0]])), "NaN"),
        ((np.array([[0.5]]), np.array([[-1.0]])), "log-probs"),
        ((np.array([-1.0, -2.0]), np.array([-1.0, -2.0])), "2-D"),
        (([], []), "at least one"),
    ],
)
def test_invalid_token_inputs(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sequence_kl(*args)


def test_mask_shape_checked() -> None:
    with pytest.raises(ValueError, match="mask"):
        sequence_kl(np.zeros((2, 3)) - 1, np.zeros((2, 3)) - 1, mask=np.ones((2, 2), dtype=bool))


def test_forecast_safety_converges_to_tilt() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.4])
    g = np.array([1.0, 0.7, 0.2, 0.0])
    s = np.array([0.1, 0.4, 0.8, 1.0])
    beta = 0.3
    q, _ = tilt(p, g, beta)
    rng = np.random.default_rng(4)
    idx = rng.choice(4, size=50000, p=p)
    assert forecast_safety(g[idx], s[idx], beta) == pytest.approx(float(q @ s), abs=0.01)


def test_forecast_safety_is_tilt_of_empirical_distribution() -> None:
    g = np.array([1.0, 1.0, 0.0, 0.5])
    s = np.array([0.0, 0.5, 1.0, 1.0])
    uniform = np.full(4, 0.25)
    for beta in (1e-3, 0.1, 1.0, 100.0):
        assert forecast_safety(g, s, beta) - s.mean() == pytest.approx(drift(uniform, g, s, beta), abs=1e-12)
    with np.errstate(over="raise", invalid="raise"):
        assert forecast_safety(g, s, 1e-3) == pytest.approx(0.25, abs=1e-12)  # mean s over g = 1


def test_forecast_safety_validates() -> None:
    with pytest.raises(ValueError, match="shape"):
        forecast_safety([1.0, 0.0], [1.0], 1.0)
    with pytest.raises(ValueError, match="beta"):
        forecast_safety([1.0], [1.0], 0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        forecast_safety([1.0], [1.5], 1.0)


def test_bootstrap_is_seeded_and_configurable() -> None:
    x = np.random.default_rng(5).normal(size=40)
    a = bootstrap_ci(x, np.mean, n_resamples=300, seed=7)
    assert a == bootstrap_ci(x, np.mean, n_resamples=300, seed=7)
    assert a != bootstrap_ci(x, np.mean, n_resamples=300, seed=8)
    assert a[0] == pytest.approx(float(x.mean())) and a[1] < a[0] < a[2]
    narrow = bootstrap_ci(x, np.mean, n_resamples=300, alpha=0.5, seed=7)
    assert a[1] <= narrow[1] and narrow[2] <= a[2]
    via_indices = bootstrap_ci(lambda idx: float(x[idx].mean()), n=x.size, n_resamples=300, seed=7)
    assert via_indices == a
    rows = np.column_stack([x, 2 * x])
    est, lo, hi = bootstrap_ci(rows, lambda m: float(m[:, 1].mean()), n_resamples=300, seed=7)
    assert (est, lo, hi) == pytest.approx((2 * a[0], 2 * a[1], 2 * a[2]))


def test_bootstrap_covers_truth() -> None:
    rng = np.random.default_rng(6)
    covered = 0
    trials = 200
    for t in range(trials):
        x = rng.binomial(1, 0.3, size=60).astype(float)
        _, lo, hi = bootstrap_ci(x, np.mean, n_resamples=400, seed=t)
        covered += lo <= 0.3 <= hi
    assert 0.88 <= covered / trials <= 0.99


def test_bootstrap_validates() -> None:
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci([1.0, 2.0], alpha=1.5)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([1.0, 2.0], n_resamples=0)
    with pytest.raises(ValueError, match="needs n"):
        bootstrap_ci(lambda idx: 0.0)
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_ci([])
