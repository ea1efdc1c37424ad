"""Safety certificate from log-probs alone (DESIGN.md section 2, uses 2 and 3).

S(pi) >= S(pi_ref) - bound(KL or chi2) holds for any policy pi, so sampling pi on a probe set and scoring
those samples under pi and pi_ref certifies a safety floor with no judge call on pi. check_measured then
confronts a judged drift with the bounds: a violation beyond the CI is a bug or a judge error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from rlvr_safety.theory._checks import as_alpha, as_unit, as_vector, jsonable
from rlvr_safety.theory.estimators import (
    TokenArrays,
    bootstrap_ci,
    chi2_estimate,
    sequence_kl,
)

__all__ = ["BoundCheck", "BoundResult", "Certificate", "certify", "check_measured"]

BOUND_NAMES = ("pinsker", "bretagnolle_huber", "chi2")
PINSKER_USELESS_KL = 2.0


def _pinsker(kl: float) -> float:
    return math.sqrt(kl / 2)


def _bh(kl: float) -> float:
    return math.sqrt(-math.expm1(-kl))


def _chi2_bound(var: float, chi: float) -> float:
    return 0.0 if var == 0 else math.sqrt(var * chi)


def _floor(s_ref: float, bound: float) -> float:
    return min(1.0, max(0.0, s_ref - bound))


@dataclass(frozen=True)
class BoundResult:
    """One bound: point value from the KL/chi2 estimate, conservative value from its upper CI, and floors."""

    name: str
    value: float
    value_conservative: float
    floor: float
    floor_conservative: float
    vacuous: bool

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self.__dict__)


@dataclass(frozen=True)
class Certificate:
    """Certified safety floors S(pi) >= S_ref - bound; floor_conservative is the one to quote."""

    n_sequences: int
    n_ref: int
    s_ref: float
    s_ref_ci: tuple[float, float]
    var_ref: float
    kl_k1: float
    kl_k1_ci: tuple[float, float]
    kl_k3: float
    kl_k3_ci: tuple[float, float]
    k3_level: str
    kl: float
    kl_upper: float
    chi2: float
    chi2_upper: float
    bounds: dict[str, BoundResult]
    alpha: float
    n_resamples: int
    seed: int
    notes: list[str] = field(default_factory=list)

    def bound_values(self, conservative: bool = True) -> dict[str, float]:
        """Bound values keyed by name, ready for check_measured."""
        return {k: (b.value_conservative if conservative else b.value) for k, b in self.bounds.items()}

    @property
    def floor(self) -> float:
        """The best (largest) conservative floor over all bounds."""
        return max(b.floor_conservative for b in self.bounds.values())

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "bounds"}
        data["bounds"] = {k: b.to_dict() for k, b in self.bounds.items()}
        data["floor"] = self.floor
        return jsonable(data)


def certify(
    s_ref: ArrayLike,
    *,
    seq_log_ratios: ArrayLike | None = None,
    logp: TokenArrays | None = None,
    logq: TokenArrays | None = None,
    mask: ArrayLike | None = None,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Certificate:
    """Certify S(pi) from pi-sampled sequences and judge scores s_ref of reference samples on the probe set.

    Give either seq_log_ratios (log pi(y) - log pi_ref(y) per sequence) or token-level logp/logq (then k3 is
    computed per token, which has lower variance than on whole sequences). Over several prompts the KL is
    the prompt-average and the floor is for the average safety (Jensen).
    """
    a = as_alpha(alpha)
    s = as_unit(s_ref, "s_ref")
    if (seq_log_ratios is None) == (logp is None and logq is None):
        raise ValueError("give either seq_log_ratios or both logp and logq")
    if seq_log_ratios is None:
        if logp is None or logq is None:
            raise ValueError("token-level input needs both logp and logq")
        est = sequence_kl(logp, logq, mask)
        k1, k3, level = est.k1, est.k3, "token"
    else:
        k1 = as_vector(seq_log_ratios, "seq_log_ratios")
        with np.errstate(over="ignore"):
            k3 = np.expm1(-k1) + k1
        level = "sequence"
    ratios = k1

    k1_mean, k1_lo, k1_hi = bootstrap_ci(k1, np.mean, n_resamples=n_resamples, alpha=a, seed=seed)
    k3_mean, k3_lo, k3_hi = bootstrap_ci(k3, np.mean, n_resamples=n_resamples, alpha=a, seed=seed)
    chi_hat, _, chi_hi = bootstrap_ci(
        lambda idx: chi2_estimate(ratios[idx]), n=ratios.size, n_resamples=n_resamples, alpha=a, seed=seed
    )
    s_mean, s_lo, s_hi = bootstrap_ci(s, np.mean, n_resamples=n_resamples, alpha=a, seed=seed)
    var_ref = float(s.var(ddof=1)) if s.size > 1 else 0.0

    notes = ["TV is not estimable from samples of pi alone; only KL- and chi2-based bounds are certified."]
    kl_point, kl_upper = max(0.0, k1_mean), max(0.0, k1_hi)
    if k1_mean < 0:
        notes.append(f"k1 mean {k1_mean:.4g} < 0 from sampling noise; clipped to 0 for the bounds.")
    chi_point, chi_upper = max(0.0, chi_hat), max(0.0, chi_hi)
    if chi_hat < 0:
        notes.append(f"chi2 estimate {chi_hat:.4g} < 0 from sampling noise; clipped to 0 for the bound.")
    if not math.isfinite(chi_upper):
        notes.append("chi2 estimate overflowed (a sequence log-ratio above ~709); the chi2 bound is vacuous.")
    notes.append("chi2 is heavy-tailed: its estimate and bootstrap CI understate it at small n; prefer KL.")
    if kl_upper > PINSKER_USELESS_KL:
        notes.append(
            f"sequence KL up to {kl_upper:.3g} nats (> {PINSKER_USELESS_KL:g}): Pinsker's bound is >= 1 and "
            "useless; Bretagnolle-Huber stays below 1 but is weak."
        )
    if s.size < 2:
        notes.append("only one reference score: Var_ref(s) is taken as 0 and S_ref has no real CI.")

    values = {
        "pinsker": (_pinsker(kl_point), _pinsker(kl_upper)),
        "bretagnolle_huber": (_bh(kl_point), _bh(kl_upper)),
        "chi2": (_chi2_bound(var_ref, chi_point), _chi2_bound(var_ref, chi_upper)),
    }
    results = {
        name: BoundResult(
            name=name,
            value=point,
            value_conservative=upper,
            floor=_floor(s_mean, point),
            floor_conservative=_floor(s_mean, upper),
            vacuous=upper >= s_mean,
        )
        for name, (point, upper) in values.items()
    }
    if all(r.vacuous for r in results.values()):
        notes.append("every bound is vacuous (>= S_ref): the certificate says nothing at this KL.")
    return Certificate(
        n_sequences=int(ratios.size),
        n_ref=int(s.size),
        s_ref=s_mean,
        s_ref_ci=(s_lo, s_hi),
        var_ref=var_ref,
        kl_k1=k1_mean,
        kl_k1_ci=(k1_lo, k1_hi),
        kl_k3=k3_mean,
        kl_k3_ci=(k3_lo, k3_hi),
        k3_level=level,
        kl=kl_point,
        kl_upper=kl_upper,
        chi2=chi_point,
        chi2_upper=chi_upper,
        bounds=results,
        alpha=a,
        n_resamples=int(n_resamples),
        seed=int(seed),
        notes=notes,
    )


@dataclass(frozen=True)
class BoundCheck:
    """A measured drift against one bound; within is False only when even the CI's nearest edge exceeds it."""

    bound: float
    measured_abs_lower: float
    margin: float
    within: bool

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self.__dict__)


def check_measured(
    measured_drift: float,
    drift_ci: tuple[float, float],
    bound_values: Mapping[str, float | None],
) -> dict[str, BoundCheck]:
    """Compare |measured drift| (shrunk to the CI edge nearest 0) to each bound; margin < 0 is a violation.

    A None bound (non-finite in a to_dict) counts as +inf.
    """
    d = float(measured_drift)
    lo, hi = (float(x) for x in drift_ci)
    if not all(math.isfinite(x) for x in (d, lo, hi)):
        raise ValueError("measured_drift and drift_ci must be finite")
    if lo > hi:
        raise ValueError(f"drift_ci must be (lo, hi) with lo <= hi, got ({lo}, {hi})")
    if not lo <= d <= hi:
        raise ValueError(f"measured_drift {d} lies outside its CI ({lo}, {hi})")
    abs_lower = 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))
    out = {}
    for name, raw in bound_values.items():
        bound = math.inf if raw is None else float(raw)
        if math.isnan(bound) or bound < 0:
            raise ValueError(f"bound {name!r} must be a non-negative number, got {raw!r}")
        margin = bound - abs_lower
        out[name] = BoundCheck(bound=bound, measured_abs_lower=abs_lower, margin=margin, within=margin >= 0)
    return out
