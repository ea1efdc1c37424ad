"""Exact theory on a discrete path distribution: the KL-regularised optimum, its safety drift, and drift bounds.

The RLVR optimum of E_pi[g] - beta * KL(pi || p) is the exponential tilt q = p e^{g/beta} / Z. Everything here
works in log space so that small beta (where e^{1/beta} overflows) still gives exact q, drift, KL and chi2.
See docs/theory.md for the statements and DESIGN.md section 2 for their source.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from rlvr_safety.theory._checks import FloatArray, as_beta, as_distribution, as_unit

__all__ = [
    "bernstein_bound",
    "binary_drift",
    "binary_tilt",
    "bounds",
    "bretagnolle_huber_bound",
    "chi2",
    "chi2_bound",
    "delta_success",
    "drift",
    "kl",
    "log_partition",
    "optimum_bound",
    "pinsker_bound",
    "tilt",
    "tv",
]


def _logsumexp(logw: FloatArray) -> float:
    top = float(np.max(logw))
    if top == -math.inf:
        return -math.inf
    return top + math.log(float(np.sum(np.exp(logw - top))))


def _log_weights(p: FloatArray, g: FloatArray, beta: float) -> FloatArray:
    with np.errstate(divide="ignore"):
        return np.log(p) + g / beta


def _prepare(p: ArrayLike, g: ArrayLike, beta: float) -> tuple[FloatArray, FloatArray, float]:
    pp = as_distribution(p, "p")
    gg = as_unit(g, "g", like=pp)
    return pp, gg, as_beta(beta)


def log_partition(p: ArrayLike, g: ArrayLike, beta: float) -> float:
    """log Z = log E_p[e^{g/beta}]; finite even when Z itself overflows (beta ~ 1e-3)."""
    pp, gg, b = _prepare(p, g, beta)
    return _logsumexp(_log_weights(pp, gg, b))


def _tilt(pp: FloatArray, gg: FloatArray, b: float) -> tuple[FloatArray, float]:
    logw = _log_weights(pp, gg, b)
    log_z = _logsumexp(logw)
    q = np.exp(logw - log_z)
    return q / q.sum(), log_z


def tilt(p: ArrayLike, g: ArrayLike, beta: float) -> tuple[FloatArray, float]:
    """The RLVR optimum q and partition Z. Z is +inf when it overflows; use log_partition for its log."""
    pp, gg, b = _prepare(p, g, beta)
    q, log_z = _tilt(pp, gg, b)
    with np.errstate(over="ignore"):
        z = float(np.exp(log_z))
    return q, z


def drift(p: ArrayLike, g: ArrayLike, s: ArrayLike, beta: float) -> float:
    """Safety drift S(q) - S(p) of the optimum; equals Cov_p(s, e^{g/beta}) / Z."""
    pp, gg, b = _prepare(p, g, beta)
    ss = as_unit(s, "s", like=pp)
    q, _ = _tilt(pp, gg, b)
    return float(np.dot(q - pp, ss))


def delta_success(p: ArrayLike, g: ArrayLike, beta: float) -> float:
    """Success gain E_q[g] - E_p[g] of the optimum; never negative."""
    pp, gg, b = _prepare(p, g, beta)
    q, _ = _tilt(pp, gg, b)
    return max(0.0, float(np.dot(q - pp, gg)))


def _pair(q: ArrayLike, p: ArrayLike) -> tuple[FloatArray, FloatArray]:
    qq = as_distribution(q, "q")
    pp = as_distribution(p, "p")
    if qq.shape != pp.shape:
        raise ValueError(f"q has shape {qq.shape} but p has shape {pp.shape}")
    return qq, pp


def _kl(qq: FloatArray, pp: FloatArray) -> float:
    support = qq > 0
    if np.any(pp[support] == 0):
        return math.inf
    value = float(np.sum(qq[support] * (np.log(qq[support]) - np.log(pp[support]))))
    return max(0.0, value)


def _chi2(qq: FloatArray, pp: FloatArray) -> float:
    if np.any(pp[qq > 0] == 0):
        return math.inf
    support = pp > 0
    with np.errstate(over="ignore"):  # a subnormal p under real mass is a genuine +inf
        return float(np.sum((qq[support] - pp[support]) ** 2 / pp[support]))


def kl(q: ArrayLike, p: ArrayLike) -> float:
    """KL(q || p) in nats; +inf when q puts mass where p has none."""
    return _kl(*_pair(q, p))


def chi2(q: ArrayLike, p: ArrayLike) -> float:
    """Pearson chi-square divergence sum (q - p)^2 / p; +inf when q is not absolutely continuous wrt p."""
    return _chi2(*_pair(q, p))


def tv(q: ArrayLike, p: ArrayLike) -> float:
    """Total variation distance, half the L1 distance."""
    qq, pp = _pair(q, p)
    return 0.5 * float(np.sum(np.abs(qq - pp)))


def pinsker_bound(divergence: float) -> float:
    """sqrt(KL / 2) >= TV >= |drift|; +inf stays +inf."""
    return math.sqrt(divergence / 2) if math.isfinite(divergence) else math.inf


def bretagnolle_huber_bound(divergence: float) -> float:
    """sqrt(1 - e^{-KL}) >= TV >= |drift|; below 1 for every finite KL, 1 at KL = +inf."""
    return math.sqrt(-math.expm1(-divergence))


def bernstein_bound(variance: float, divergence: float) -> float:
    """sqrt(2 Var_p(s) KL) + KL / 3 >= |drift| for s in [0, 1] (Donsker-Varadhan with Bernstein's MGF bound).

    For X = s - E_p s <= 1, log E_p e^{lam X} <= Var lam^2 / (2 (1 - lam / 3)) for 0 < lam < 3, and
    lam (E_q s - E_p s) <= KL(q || p) + log E_p e^{lam X}; optimising lam gives the bound (applied to s and to
    1 - s, which has the same variance). It is small when s is nearly constant under p, where Pinsker is not.
    """
    if not math.isfinite(divergence):
        return math.inf
    return math.sqrt(2 * max(0.0, variance) * divergence) + divergence / 3


def chi2_bound(variance: float, chi: float) -> float:
    """sqrt(Var_p(s) chi2(q || p)) (Cauchy-Schwarz), with 0 x inf = inf.

    The identity E_q s - E_p s = E_p[(q/p - 1)(s - E_p s)] needs q << p; where q has mass outside p's support
    chi2 is +inf and no variance makes the bound small (p = [0, 1], q = [1, 0], s = [0, 1]: drift 1, Var_p 0).
    """
    if not math.isfinite(chi):
        return math.inf
    return math.sqrt(max(0.0, variance) * chi)


def bounds(p: ArrayLike, q: ArrayLike, s: ArrayLike) -> dict[str, float]:
    """Five upper bounds on |E_q s - E_p s| valid for any q when s is in [0, 1].

    Keys: tv, pinsker, bretagnolle_huber, bernstein (sqrt(2 Var_p(s) KL) + KL/3), chi2
    (Cauchy-Schwarz: sqrt(Var_p(s) * chi2(q || p))). A bound is +inf where its divergence is.
    """
    qq, pp = _pair(q, p)
    ss = as_unit(s, "s", like=pp)
    divergence = _kl(qq, pp)
    var_s = max(0.0, float(np.dot(pp, (ss - np.dot(pp, ss)) ** 2)))
    chi = _chi2(qq, pp)
    return {
        "tv": 0.5 * float(np.sum(np.abs(qq - pp))),
        "pinsker": pinsker_bound(divergence),
        "bretagnolle_huber": bretagnolle_huber_bound(divergence),
        "bernstein": bernstein_bound(var_s, divergence),
        "chi2": chi2_bound(var_s, chi),
    }


def optimum_bound(p: ArrayLike, g: ArrayLike, beta: float) -> float:
    """sqrt(DeltaSuccess / (2 beta)): Pinsker with KL(q*||p) <= DeltaSuccess / beta; at most 1/sqrt(2 beta)."""
    return math.sqrt(delta_success(p, g, beta) / (2 * as_beta(beta)))


def _binary_args(p_success: float, beta: float) -> tuple[float, float]:
    p = float(p_success)
    if not 0 <= p <= 1:
        raise ValueError(f"p_success must be in [0, 1], got {p_success!r}")
    return p, as_beta(beta)


def binary_tilt(p_success: float, beta: float) -> tuple[float, float, float, float]:
    """Closed forms for g in {0, 1}: (q_success, Z, KL(q*||p), chi2(q*||p)), with Z = 1 - p + p e^{1/beta}.

    Written through L = log(p + (1 - p) e^{-1/beta}) so no term overflows; Z alone may be +inf.
    """
    p, b = _binary_args(p_success, beta)
    a = 1.0 / b
    if p == 0.0:
        return 0.0, 1.0, 0.0, 0.0
    if p == 1.0:
        return 1.0, (math.exp(a) if a < 709.0 else math.inf), 0.0, 0.0
    log_l = float(np.logaddexp(math.log(p), math.log1p(-p) - a))
    q = math.exp(math.log(p) - log_l)
    one_minus_q = math.exp(math.log1p(-p) - a - log_l)
    log_z = a + log_l
    z = math.exp(log_z) if log_z < 709.0 else math.inf
    # KL = q log(q/p) + (1-q) log((1-q)/(1-p)) with log(q/p) = -L and log((1-q)/(1-p)) = -a - L.
    divergence = max(0.0, -log_l - one_minus_q * a)
    chi = (q - p) ** 2 / (p * (1 - p))
    return q, z, divergence, chi


def binary_drift(p_success: float, beta: float, s_given_success: float, s_given_failure: float) -> float:
    """c p (1-p) (s1 - s0) / (1 + c p) with c = e^{1/beta} - 1, computed as (q - p)(s1 - s0)."""
    p, b = _binary_args(p_success, beta)
    for name, value in (("s_given_success", s_given_success), ("s_given_failure", s_given_failure)):
        if not 0 <= float(value) <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    q = binary_tilt(p, b)[0]
    return (q - p) * (float(s_given_success) - float(s_given_failure))
