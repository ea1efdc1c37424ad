"""Exact theory (DESIGN.md section 2) against hand computation, brute force and random distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from rlvr_safety.theory import (
    binary_drift,
    binary_tilt,
    bounds,
    chi2,
    delta_success,
    drift,
    kl,
    log_partition,
    optimum_bound,
    tilt,
    tv,
)

TOL = 1e-9
unit = st.floats(0.0, 1.0, allow_nan=False)
betas = st.floats(-3.0, 2.0).map(lambda e: 10.0**e)  # 1e-3 .. 100, log-uniform


@st.composite
def distributions(draw: st.DrawFn, size: int | None = None) -> np.ndarray:
    n = size if size is not None else draw(st.integers(1, 8))
    raw = np.array(draw(st.lists(unit, min_size=n, max_size=n)))
    assume(raw.sum() > 1e-3)
    return raw / raw.sum()


@st.composite
def problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = draw(distributions())
    n = p.size
    g = np.array(draw(st.lists(unit, min_size=n, max_size=n)))
    s = np.array(draw(st.lists(unit, min_size=n, max_size=n)))
    return p, g, s


def test_hand_computed_two_paths() -> None:
    # p = [1/2, 1/2], g = [1, 0], s = [0.2, 1.0], beta = 1/2, so e^{g/beta} = [e^2, 1], e^2 = 7.389056.
    p, g, s, beta = [0.5, 0.5], [1.0, 0.0], [0.2, 1.0], 0.5
    e2 = math.exp(2)
    q, z = tilt(p, g, beta)
    # Z = (e^2 + 1)/2 = 8.389056/2 = 4.194528
    assert z == pytest.approx((e2 + 1) / 2, rel=1e-12)
    assert z == pytest.approx(4.194528, abs=1e-6)
    # q = [e^2/(e^2+1), 1/(e^2+1)] = [0.880797, 0.119203]
    assert q == pytest.approx([e2 / (e2 + 1), 1 / (e2 + 1)], rel=1e-12)
    assert q == pytest.approx([0.880797, 0.119203], abs=1e-6)
    # S(p) = 0.6; S(q) = 0.2*0.880797 + 1.0*0.119203 = 0.295362; drift = -0.304638.
    # Binary form: c = e^2 - 1 = 6.389056, c p(1-p)(s1-s0)/(1+cp) = 6.389056*0.25*(-0.8)/4.194528 = -0.304638.
    # Covariance form: Cov_p(s, e^{g/beta}) = E[s w] - E[s]E[w] = (0.2 e^2 + 1)/2 - 0.6*4.194528
    #   = 1.238906 - 2.516717 = -1.277811; divided by Z: -0.304638.
    d = drift(p, g, s, beta)
    assert d == pytest.approx(-0.304638, abs=1e-6)
    assert binary_drift(0.5, beta, 0.2, 1.0) == pytest.approx(d, abs=1e-12)
    # KL = E_q[g]/beta - log Z = 0.880797*2 - log(4.194528) = 1.761594 - 1.433781 = 0.327813
    assert kl(q, p) == pytest.approx(0.327813, abs=1e-6)
    # chi2 = (p e^4 + 1 - p)/Z^2 - 1 = (27.299075 + 0.5)/17.594066 - 1 = 0.580026
    #      = (q1 - p1)^2 / (p1 (1 - p1)) = 0.380797^2 / 0.25
    assert chi2(q, p) == pytest.approx(0.580026, abs=1e-6)
    # TV = |q1 - p1| = 0.380797
    assert tv(q, p) == pytest.approx(0.380797, abs=1e-6)
    b = bounds(p, q, s)
    assert b["tv"] == pytest.approx(0.380797, abs=1e-6)
    # Pinsker sqrt(0.327813/2) = sqrt(0.163907) = 0.404854
    assert b["pinsker"] == pytest.approx(0.404854, abs=1e-6)
    # BH sqrt(1 - e^{-0.327813}) = sqrt(1 - 0.720498) = sqrt(0.279502) = 0.528680
    assert b["bretagnolle_huber"] == pytest.approx(0.528680, abs=1e-6)
    # chi2 bound: Var_p(s) = 0.25*0.8^2 = 0.16; sqrt(0.16*0.580026) = sqrt(0.092804) = 0.304638 = |drift|:
    # with two paths Cauchy-Schwarz is tight (both centred vectors live in a 1-D space).
    assert b["chi2"] == pytest.approx(0.304638, abs=1e-6)
    # DeltaSuccess = 0.880797 - 0.5 = 0.380797; optimum bound sqrt(0.380797/(2*0.5)) = 0.617088
    assert delta_success(p, g, beta) == pytest.approx(0.380797, abs=1e-6)
    assert optimum_bound(p, g, beta) == pytest.approx(0.617088, abs=1e-6)
    # KL <= DeltaSuccess/beta: 0.327813 <= 0.761594
    assert kl(q, p) <= delta_success(p, g, beta) / beta
    qs, zb, klb, chib = binary_tilt(0.5, beta)
    assert (qs, zb, klb, chib) == pytest.approx((0.880797, 4.194528, 0.327813, 0.580026), abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(problems(), betas)
def test_every_bound_dominates_drift_at_the_optimum(prob: tuple, beta: float) -> None:
    p, g, s = prob
    q, _ = tilt(p, g, beta)
    d = abs(drift(p, g, s, beta))
    for name, value in bounds(p, q, s).items():
        assert value >= d - TOL, name
    assert optimum_bound(p, g, beta) >= d - TOL
    assert optimum_bound(p, g, beta) <= 1 / math.sqrt(2 * beta) + TOL


@st.composite
def policy_problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 8))
    p, q = draw(distributions(n)), draw(distributions(n))
    s = np.array(draw(st.lists(unit, min_size=n, max_size=n)))
    return p, q, s


# The counterexample hypothesis once found: q outside p's support with Var_p(s) = 0 gave chi2 bound 0 x inf = 0.
@settings(max_examples=300, deadline=None)
@given(policy_problems())
@example((np.array([0.0, 1.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0])))
def test_every_bound_dominates_drift_for_any_policy(problem: tuple) -> None:
    p, q, s = problem
    d = abs(float(np.dot(q - p, s)))
    for name, value in bounds(p, q, s).items():
        assert value >= d - TOL, name


@settings(max_examples=200, deadline=None)
@given(problems(), st.floats(0.1, 20.0))
def test_drift_is_covariance_over_partition(prob: tuple, beta: float) -> None:
    p, g, s = prob
    w = np.exp(g / beta)
    z = float(p @ w)
    cov = float(p @ (s * w)) - float(p @ s) * z
    q, z_tilt = tilt(p, g, beta)
    assert z_tilt == pytest.approx(z, rel=1e-10)
    assert log_partition(p, g, beta) == pytest.approx(math.log(z), abs=1e-10)
    assert drift(p, g, s, beta) == pytest.approx(cov / z, abs=1e-10)


@settings(max_examples=200, deadline=None)
@given(problems(), betas)
def test_kl_of_optimum_bounded_by_success_gain(prob: tuple, beta: float) -> None:
    p, g, _ = prob
    q, _ = tilt(p, g, beta)
    divergence = kl(q, p)
    assert divergence <= delta_success(p, g, beta) / beta + 1e-7 * (1 + 1 / beta)
    # and equals E_q[g]/beta - log Z (DESIGN.md)
    if beta >= 0.05:
        assert divergence == pytest.approx(float(q @ g) / beta - log_partition(p, g, beta), abs=1e-8)


@settings(max_examples=200, deadline=None)
@given(st.floats(1e-6, 1 - 1e-6), st.floats(0.05, 20.0), unit, unit)
def test_binary_closed_forms_equal_brute_force(p: float, beta: float, s1: float, s0: float) -> None:
    dist, g, s = [p, 1 - p], [1.0, 0.0], [s1, s0]
    q, z = tilt(dist, g, beta)
    qs, zb, klb, chib = binary_tilt(p, beta)
    assert qs == pytest.approx(q[0], abs=1e-12)
    assert zb == pytest.approx(z, rel=1e-10)
    assert klb == pytest.approx(kl(q, dist), abs=1e-9)
    assert chib == pytest.approx(chi2(q, dist), rel=1e-8, abs=1e-10)
    # the DESIGN.md forms, evaluated literally (safe at these betas)
    e = math.exp(1 / beta)
    assert zb == pytest.approx(1 - p + p * e, rel=1e-10)
    assert qs == pytest.approx(p * e / zb, rel=1e-10)
    assert klb == pytest.approx(qs / beta - math.log(zb), abs=1e-8)
    assert chib == pytest.approx((p * e * e + 1 - p) / zb**2 - 1, rel=1e-6, abs=1e-8)
    c = e - 1
    closed = c * p * (1 - p) * (s1 - s0) / (1 + c * p)
    assert binary_drift(p, beta, s1, s0) == pytest.approx(closed, abs=1e-10)
    assert binary_drift(p, beta, s1, s0) == pytest.approx(drift(dist, g, s, beta), abs=1e-10)


@settings(max_examples=100, deadline=None)
@given(problems(), betas, unit)
def test_zero_drift_when_g_or_s_constant(prob: tuple, beta: float, c: float) -> None:
    p, g, s = prob
    assert drift(p, np.full_like(g, c), s, beta) == pytest.approx(0.0, abs=1e-12)
    assert drift(p, g, np.full_like(s, c), beta) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 4).flatmap(distributions), st.integers(1, 4).flatmap(distributions), betas, st.data())
def test_zero_drift_when_s_and_g_independent(
    a: np.ndarray, b: np.ndarray, beta: float, data: st.DataObject
) -> None:
    # Paths (i, j) with p = a_i b_j, g depending on i only and s on j only: s and g independent under p.
    gi = np.array(data.draw(st.lists(unit, min_size=a.size, max_size=a.size)))
    sj = np.array(data.draw(st.lists(unit, min_size=b.size, max_size=b.size)))
    p = np.outer(a, b).ravel()
    g = np.repeat(gi, b.size)
    s = np.tile(sj, a.size)
    assert drift(p, g, s, beta) == pytest.approx(0.0, abs=1e-12)


def test_safer_successes_improve_safety() -> None:
    assert drift([0.5, 0.5], [1, 0], [1.0, 0.2], 0.5) > 0
    assert binary_drift(0.3, 1.0, 0.9, 0.1) > 0


def test_small_beta_is_stable() -> None:
    p, g, s, beta = [0.2, 0.3, 0.5], [1.0, 0.9, 0.0], [0.1, 0.5, 1.0], 1e-3
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        q, z = tilt(p, g, beta)
        log_z = log_partition(p, g, beta)
        d = drift(p, g, s, beta)
        b = bounds(p, q, s)
        qs, zb, klb, chib = binary_tilt(0.3, beta)
        bd = binary_drift(0.3, beta, 0.0, 1.0)
    assert math.isinf(z) and math.isinf(zb)
    # log Z = 1000 + log 0.2 + log(1 + 1.5 e^{-100}) ~= 1000 + log 0.2
    assert log_z == pytest.approx(1000 + math.log(0.2), abs=1e-9)
    assert q == pytest.approx([1.0, 0.0, 0.0], abs=1e-30)
    assert d == pytest.approx(0.1 - (0.02 + 0.15 + 0.5), abs=1e-12)
    assert all(math.isfinite(v) for v in b.values())
    assert b["pinsker"] == pytest.approx(math.sqrt(-math.log(0.2) / 2), abs=1e-9)
    assert (qs, klb, chib) == pytest.approx((1.0, -math.log(0.3), 0.7**2 / 0.21), abs=1e-9)
    assert bd == pytest.approx(-0.7, abs=1e-12)


def test_large_beta_leaves_policy_unchanged() -> None:
    q, z = tilt([0.2, 0.8], [1, 0], 1e9)
    assert q == pytest.approx([0.2, 0.8], abs=1e-8)
    assert z == pytest.approx(1.0, abs=1e-8)


def test_kl_and_chi2_infinite_off_support() -> None:
    assert math.isinf(kl([0.5, 0.5], [1.0, 0.0]))
    assert math.isinf(chi2([0.5, 0.5], [1.0, 0.0]))
    assert kl([1.0, 0.0], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert math.isinf(bounds([1.0, 0.0], [0.5, 0.5], [0.0, 1.0])["pinsker"])


def test_zero_variance_never_hides_off_support_mass() -> None:
    # p is a point mass on a safe path, q moves all mass to an unsafe one: drift -1, Var_p(s) = 0, chi2 = inf.
    b = bounds([0.0, 1.0], [1.0, 0.0], [0.0, 1.0])
    assert math.isinf(b["chi2"]) and math.isinf(b["bernstein"]) and math.isinf(b["pinsker"])
    assert b["tv"] == pytest.approx(1.0) and b["bretagnolle_huber"] == pytest.approx(1.0)


def test_bernstein_bound_hand_computed_and_tighter_when_s_nearly_constant() -> None:
    from rlvr_safety.theory import bernstein_bound, pinsker_bound

    assert bernstein_bound(0.25, 0.18) == pytest.approx(math.sqrt(2 * 0.25 * 0.18) + 0.06)
    assert bernstein_bound(0.0, 0.3) == pytest.approx(0.1)
    assert bernstein_bound(0.01, 0.02) < pinsker_bound(0.02)  # sqrt(4e-4) + 0.0067 = 0.027 < 0.1
    # a two-point example where the bound is nearly attained to first order: p = (1-e, e), q = (1-2e, 2e)
    e = 1e-3
    p, q, s = np.array([1 - e, e]), np.array([1 - 2 * e, 2 * e]), np.array([1.0, 0.0])
    b = bounds(p, q, s)
    assert abs(float((q - p) @ s)) <= b["bernstein"] < b["pinsker"]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: tilt([0.6, 0.6], [1, 0], 1.0), "sum to 1"),
        (lambda: tilt([1.2, -0.2], [1, 0], 1.0), "negative"),
        (lambda: tilt([0.5, 0.5], [1, 0], 0.0), "beta"),
        (lambda: tilt([0.5, 0.5], [1, 0], -1.0), "beta"),
        (lambda: tilt([0.5, 0.5], [1, 0], float("nan")), "beta"),
        (lambda: tilt([0.5, 0.5], [1, 0, 0], 1.0), "shape"),
        (lambda: tilt([0.5, 0.5], [1.5, 0], 1.0), r"\[0, 1\]"),
        (lambda: drift([0.5, 0.5], [1, 0], [0.2, -0.1], 1.0), r"s must lie in \[0, 1\]"),
        (lambda: tilt([], [], 1.0), "empty"),
        (lambda: tilt([[0.5, 0.5]], [[1, 0]], 1.0), "1-D"),
        (lambda: tilt([0.5, float("nan")], [1, 0], 1.0), "NaN"),
        (lambda: kl([0.5, 0.5], [0.2, 0.3, 0.5]), "shape"),
        (lambda: bounds([0.5, 0.5], [0.5, 0.5], [2.0, 0.0]), r"\[0, 1\]"),
        (lambda: binary_tilt(1.5, 1.0), "p_success"),
        (lambda: binary_drift(0.5, 1.0, 1.2, 0.0), "s_given_success"),
        (lambda: optimum_bound([0.5, 0.5], [1, 0], 0), "beta"),
    ],
)
def test_invalid_input_raises(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


def test_normalisation_tolerance() -> None:
    q, _ = tilt([0.5 + 5e-9, 0.5], [1, 0], 1.0)
    assert q.sum() == pytest.approx(1.0, abs=1e-15)
