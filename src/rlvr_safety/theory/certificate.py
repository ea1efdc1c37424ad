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
from scipy import stats

from rlvr_safety.theory._checks import as_alpha, as_unit, as_vector, jsonable
from rlvr_safety.theory.estimators import (
    TokenArrays,
    bootstrap_ci,
    chi2_estimate,
    sequence_kl,
)
from rlvr_safety.theory.tilting import bernstein_bound, bretagnolle_huber_bound, chi2_bound, pinsker_bound

__all__ = [
    "BoundCheck",
    "BoundResult",
    "Certificate",
    "certify",
    "check_measured",
    "kl_upper_limit",
    "mean_lower_limit",
    "variance_upper_limit",
]

BOUND_NAMES = ("pinsker", "bretagnolle_huber", "bernstein", "chi2")
# Bounds the floor may use: functions of KL and Var_ref(s) only, both of which get a confidence limit. chi2 is
# reported but never certified: E_pi[pi/pi_ref] has no finite-sample upper limit without a bound on the ratio,
# and its bootstrap limit was measured to fail far more often than alpha (docs/theory.md).
CERTIFIED_BOUNDS = ("pinsker", "bretagnolle_huber", "bernstein")
PINSKER_USELESS_KL = 2.0
# From this many policy samples the KL upper limit held at its level in the coverage simulation (docs/theory.md).
RELIABLE_N = 24


def _floor(s_lower: float, bound: float) -> float:
    return min(1.0, max(0.0, s_lower - bound))


def _bernoulli_kl(a: float, b: float) -> float:
    """kl(a || b) between Bernoulli means, with 0 log 0 = 0."""
    out = 0.0
    if a > 0:
        out += a * math.log(a / b) if b > 0 else math.inf
    if a < 1:
        out += (1 - a) * math.log((1 - a) / (1 - b)) if b < 1 else math.inf
    return out


def mean_lower_limit(scores: ArrayLike, alpha: float) -> float:
    """A one-sided (1 - alpha) lower confidence limit for the mean of scores in [0, 1].

    Binary scores: Clopper-Pearson (exact). Fractional scores: the Chernoff-Hoeffding limit, the smallest mu
    with n kl(mean || mu) <= log(1/alpha), valid for any distribution on [0, 1] (Hoeffding 1963, Theorem 1).
    Never a point value: six safe samples out of six give 0.61 at alpha = 0.05, not 1.
    """
    s = as_unit(scores, "s_ref")
    a = as_alpha(alpha)
    n, mean = s.size, float(s.mean())
    if np.all((s == 0) | (s == 1)):
        k = int(s.sum())
        return 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    if mean <= 0:
        return 0.0
    target = math.log(1 / a) / n
    lo, hi = 0.0, mean
    for _ in range(100):  # bisection: kl(mean || mu) decreases as mu rises to mean
        mid = 0.5 * (lo + hi)
        if _bernoulli_kl(mean, mid) > target:
            lo = mid
        else:
            hi = mid
    return lo


def variance_upper_limit(mean_lower: float) -> float:
    """Var(s) <= mu (1 - mu) for s in [0, 1]; given mu >= L, the largest value is L (1 - L) when L >= 1/2, else 1/4.

    Needs no interval of its own: it holds whenever the mean's lower limit does. A sample variance of 0 from
    a handful of safe samples would make a variance-sensitive bound claim far too much.
    """
    return 0.25 if mean_lower < 0.5 else mean_lower * (1 - mean_lower)


def kl_upper_limit(k1: ArrayLike, alpha: float, n_resamples: int = 1000, seed: int = 0) -> float:
    """A one-sided (1 - alpha) upper limit for KL = E_pi[log pi/pi_ref] from per-sequence log-ratios.

    The larger of Student-t and bootstrap-t limits: the log-ratio's right tail is heavy when pi moved mass onto
    sequences rare under pi_ref, which both understate at small n; the maximum was the most reliable of the
    variants measured (docs/theory.md). Approximate: no finite-sample limit exists for an unbounded variable.
    """
    x = as_vector(k1, "seq_log_ratios")
    a = as_alpha(alpha)
    n, mean = x.size, float(x.mean())
    if n < 2:
        return math.inf
    sd = float(x.std(ddof=1))
    if sd == 0:
        return mean
    se = sd / math.sqrt(n)
    t_limit = mean + float(stats.t.ppf(1 - a, n - 1)) * se
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(int(n_resamples), n))
    boot = x[idx]
    boot_se = boot.std(axis=1, ddof=1) / math.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        tstat = np.where(boot_se > 0, (boot.mean(axis=1) - mean) / boot_se, 0.0)
    q = float(np.quantile(tstat, a, method="lower"))
    return max(t_limit, mean - q * se)


@dataclass(frozen=True)
class BoundResult:
    """One bound on |S(pi) - S_ref|: at the point estimates, and at the confidence limits (the certified one).

    `certified` False means the bound is shown for information and never enters the floor.
    """

    name: str
    value: float
    value_conservative: float
    floor: float
    floor_conservative: float
    vacuous: bool
    certified: bool

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self.__dict__)


@dataclass(frozen=True)
class Certificate:
    """S(pi) >= floor with probability >= level = 1 - alpha (alpha split between S_ref and KL).

    floor = max over certified bounds of LCB(S_ref) - bound(UCB(KL), UCB(Var_ref)); `floor_bound` names the bound
    that produced it. `drift_bound` is the certified bound on |S(pi) - S_ref| itself (for safety budgets).
    """

    n_sequences: int
    n_ref: int
    s_ref: float
    s_ref_ci: tuple[float, float]
    s_ref_lower: float
    var_ref: float
    var_ref_upper: float
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

    @property
    def level(self) -> float:
        return 1.0 - self.alpha

    def bound_values(self, conservative: bool = True, certified_only: bool = True) -> dict[str, float]:
        """Bound values keyed by name, ready for check_measured.

        Only certified bounds by default: a measured drift beyond the chi2 value is no evidence of a bug, since
        that value has no reliable confidence limit.
        """
        return {k: (b.value_conservative if conservative else b.value) for k, b in self.bounds.items()
                if b.certified or not certified_only}

    @property
    def floor_bound(self) -> str:
        """The certified bound that gives the highest floor (ties go to the first in CERTIFIED_BOUNDS)."""
        certified = [b for b in self.bounds.values() if b.certified]
        return max(certified, key=lambda b: b.floor_conservative).name

    @property
    def floor(self) -> float:
        """The certified floor at `level`: the best floor over certified bounds (chi2 never counts)."""
        return self.bounds[self.floor_bound].floor_conservative

    @property
    def drift_bound(self) -> float:
        """The smallest certified bound on |S(pi) - S_ref| at the confidence limits."""
        return min(b.value_conservative for b in self.bounds.values() if b.certified)

    @property
    def vacuous(self) -> bool:
        """A floor of 0 says nothing about a score in [0, 1]."""
        return self.floor <= 0.0

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "bounds"}
        data["bounds"] = {k: b.to_dict() for k, b in self.bounds.items()}
        data.update(floor=self.floor, floor_bound=self.floor_bound, level=self.level, vacuous=self.vacuous,
                    drift_bound=self.drift_bound)
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
    """Certify S(pi) >= floor at level 1 - alpha from pi-sampled sequences and judged reference scores s_ref.

    Give either seq_log_ratios (log pi(y) - log pi_ref(y) per sequence) or token-level logp/logq. alpha is
    split in two by Bonferroni: alpha/2 for the lower limit of S_ref (which also bounds Var_ref(s)), alpha/2 for
    the upper limit of the sequence KL. Over several prompts the KL is the prompt-average and the floor is for
    the average safety (Jensen). The level was measured by simulation with known ground truth (docs/theory.md).
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
    a_part = a / 2

    k1_mean, k1_lo, k1_hi = bootstrap_ci(k1, np.mean, n_resamples=n_resamples, alpha=a, seed=seed)
    k3_mean, k3_lo, k3_hi = bootstrap_ci(k3, np.mean, n_resamples=n_resamples, alpha=a, seed=seed)
    chi_hat, _, chi_hi = bootstrap_ci(
        lambda idx: chi2_estimate(ratios[idx]), n=ratios.size, n_resamples=n_resamples, alpha=a, seed=seed
    )
    s_mean = float(s.mean())
    s_lower = mean_lower_limit(s, a_part)
    s_ci = (mean_lower_limit(s, a / 2), 1.0 - mean_lower_limit(1.0 - s, a / 2))
    var_ref = float(s.var(ddof=1)) if s.size > 1 else 0.0
    var_upper = variance_upper_limit(s_lower)
    kl_upper = max(0.0, kl_upper_limit(k1, a_part, n_resamples=n_resamples, seed=seed))

    level_pct = f"{100 * (1 - a):g}%"
    notes = [
        f"floor at {level_pct}: S(pi) >= LCB(S_ref) - bound(UCB(KL)), alpha split equally between S_ref's lower "
        "limit (exact for [0, 1] scores) and the KL upper limit (approximate: Student-t/bootstrap-t).",
        "TV is not estimable from samples of pi alone; chi2 is shown but never certified (heavy-tailed).",
    ]
    kl_point = max(0.0, k1_mean)
    if k1_mean < 0:
        notes.append(f"k1 mean {k1_mean:.4g} < 0 from sampling noise; clipped to 0 for the bounds.")
    if ratios.size < RELIABLE_N:
        notes.append(f"only {ratios.size} policy samples: the KL upper limit is reliable from about {RELIABLE_N} "
                     "(coverage simulation in docs/theory.md); below that the level is approximate.")
    chi_point, chi_upper = max(0.0, chi_hat), max(0.0, chi_hi)
    if not math.isfinite(chi_upper):
        notes.append("chi2 estimate overflowed (a sequence log-ratio above ~709).")
    if kl_upper > PINSKER_USELESS_KL:
        notes.append(
            f"sequence KL up to {kl_upper:.3g} nats (> {PINSKER_USELESS_KL:g}): Pinsker's bound is >= 1 and "
            "useless; Bretagnolle-Huber stays below 1 but is weak."
        )
    if s.size < 2:
        notes.append("only one reference score: S_ref's lower limit is weak.")

    values = {
        "pinsker": (pinsker_bound(kl_point), pinsker_bound(kl_upper)),
        "bretagnolle_huber": (bretagnolle_huber_bound(kl_point), bretagnolle_huber_bound(kl_upper)),
        "bernstein": (bernstein_bound(var_ref, kl_point), bernstein_bound(var_upper, kl_upper)),
        "chi2": (chi2_bound(var_ref, chi_point), chi2_bound(var_upper, chi_upper)),
    }
    results = {
        name: BoundResult(
            name=name,
            value=point,
            value_conservative=upper,
            floor=_floor(s_mean, point),
            floor_conservative=_floor(s_lower, upper),
            vacuous=_floor(s_lower, upper) <= 0.0,
            certified=name in CERTIFIED_BOUNDS,
        )
        for name, (point, upper) in values.items()
    }
    if all(r.vacuous for r in results.values() if r.certified):
        notes.append("the certified floor is 0 (vacuous): the certificate says nothing at this KL and n.")
    return Certificate(
        n_sequences=int(ratios.size),
        n_ref=int(s.size),
        s_ref=s_mean,
        s_ref_ci=s_ci,
        s_ref_lower=s_lower,
        var_ref=var_ref,
        var_ref_upper=var_upper,
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
