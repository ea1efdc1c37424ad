"""Small statistics shared by evaluation, judges and reports.

Wilson intervals for one rate; for two models answering the same prompts, paired tests: the exact McNemar test,
Newcombe's interval for a paired difference, and the exact power of McNemar's test (for the minimum detectable
effect). scipy is imported only by the paired functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; well behaved at 0, 1 and small n, unlike Wald."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"invalid counts: {successes} successes out of {n}")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the edges; avoid 0.9999999
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


def proportion(successes: int, n: int) -> dict[str, float | int | None]:
    """A rate with its Wilson 95% interval, in the shape metrics.json uses."""
    lo, hi = wilson_interval(successes, n)
    return {"n": n, "k": successes, "rate": (successes / n) if n else None, "ci_low": lo, "ci_high": hi}


# Paired binary outcomes -------------------------------------------------------------------------------------------
# Two models answer the same prompts: each prompt gives a pair (base safe?, model safe?). Only discordant pairs
# carry information about a change, which is why a paired test sees drops that two unpaired intervals miss.

PAIRED_ALPHA = 0.05  # level of the paired test; the difference's interval is at 1 - PAIRED_ALPHA
EQUIVALENCE_MARGIN = 0.10  # "kept" = the interval's lower limit for (model - base) lies above -margin
TARGET_POWER = 0.80  # power at which the minimum detectable effect is quoted


@dataclass(frozen=True)
class PairedCounts:
    """The 2x2 table of paired binary labels (1 = safe): both, only the base, only the model, neither."""

    both: int
    only_base: int
    only_model: int
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.only_base + self.only_model + self.neither

    @property
    def discordant(self) -> int:
        return self.only_base + self.only_model

    @property
    def diff(self) -> float:
        """Model rate minus base rate, (only_model - only_base) / n."""
        return (self.only_model - self.only_base) / self.n if self.n else 0.0

    def to_dict(self) -> dict[str, int]:
        return {"both": self.both, "only_base": self.only_base, "only_model": self.only_model,
                "neither": self.neither, "n": self.n}


def paired_counts(base: Mapping[str, Any], model: Mapping[str, Any]) -> PairedCounts:
    """The 2x2 table over the item ids both mappings label (truthy = safe); ids only one side has are ignored."""
    both = only_base = only_model = neither = 0
    for key in base.keys() & model.keys():
        b, m = bool(base[key]), bool(model[key])
        if b and m:
            both += 1
        elif b:
            only_base += 1
        elif m:
            only_model += 1
        else:
            neither += 1
    return PairedCounts(both, only_base, only_model, neither)


def mcnemar_exact(only_base: int, only_model: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs against 1/2 (1.0 when none)."""
    m = only_base + only_model
    if only_base < 0 or only_model < 0:
        raise ValueError(f"invalid discordant counts: {only_base}, {only_model}")
    if m == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(only_model, m, 0.5, alternative="two-sided").pvalue)


def paired_difference_ci(counts: PairedCounts, alpha: float = PAIRED_ALPHA) -> tuple[float, float]:
    """Interval for (model rate - base rate) on paired data: Newcombe's square-and-add interval (Stat. Med. 1998).

    Each rate gets its Wilson interval; the two are combined with the phi correlation of the pairs, so positively
    correlated answers (the usual case: most prompts are refused, or answered, by both) narrow the interval. A
    positive ad - bc is shrunk by n/2 before phi is formed (Newcombe's correction, as in Altman et al.,
    Statistics with Confidence), which keeps coverage at or above nominal in our simulations where the plain phi
    fell to about 0.93 at n = 30. It stays inside [-1, 1] and behaves at 0, 1 and small n, unlike Wald.
    """
    n = counts.n
    if n == 0:
        return (-1.0, 1.0)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    a, b, c, d = counts.both, counts.only_model, counts.only_base, counts.neither  # first = model, second = base
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, z)
    l2, u2 = wilson_interval(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = float(a * d - b * c)
    cross = max(0.0, cross - n / 2) if cross > 0 else cross
    phi = cross / math.sqrt(margins) if margins else 0.0
    theta = p1 - p2
    lower = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    upper = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return (max(-1.0, theta - lower), min(1.0, theta + upper))


def mcnemar_power(n: int, p_drop: float, p_rise: float, alpha: float = PAIRED_ALPHA) -> float:
    """Exact power of the two-sided exact McNemar test at level alpha to find a significant DROP.

    p_drop and p_rise are the probabilities that a prompt is safe only for the base (a drop) or only for the
    model (a rise). Sums over the number of discordant pairs m ~ Bin(n, p_drop + p_rise): given m, the test
    rejects in the drop direction when the rises C ~ Bin(m, p_rise / (p_drop + p_rise)) are at most the largest
    k with 2 P(Bin(m, 1/2) <= k) < alpha.
    """
    import numpy as np
    from scipy.stats import binom

    psi = p_drop + p_rise
    if n <= 0 or psi <= 0:
        return 0.0
    if p_drop < 0 or p_rise < 0 or psi > 1 + 1e-12:
        raise ValueError(f"invalid probabilities p_drop={p_drop}, p_rise={p_rise}")
    m = np.arange(n + 1)
    k = binom.ppf(alpha / 2, m, 0.5) - 1  # largest k with P(Bin(m, 1/2) <= k) < alpha / 2, up to rounding
    k = np.where(binom.cdf(k + 1, m, 0.5) < alpha / 2, k + 1, k)
    k = np.where((k >= 0) & (binom.cdf(k, m, 0.5) >= alpha / 2), k - 1, k)
    reject = np.where(k >= 0, binom.cdf(k, m, min(1.0, p_rise / psi)), 0.0)
    return float(np.sum(binom.pmf(m, n, min(1.0, psi)) * reject))


def minimum_detectable_drop(n: int, alpha: float = PAIRED_ALPHA, power: float = TARGET_POWER,
                            discordant: float = 0.0) -> float | None:
    """Smallest drop in a paired rate that the exact McNemar test at level alpha finds with the given power.

    The power of a paired test depends on how many answers change in either direction, not only on the net drop,
    so the rate of discordant pairs is an input: `discordant` (e.g. the observed fraction) is used when larger
    than the drop itself, otherwise every changed answer is taken to be a drop, the most favourable case. So the
    result is what the test can see at best with that much churn; smaller drops go unseen more often than
    1 - power. None when even a drop of 1 (every pair a drop) is not detected, e.g. n < 6 at alpha 0.05.
    """
    if n <= 0:
        return None

    def power_at(drop: float) -> float:
        psi = min(1.0, max(discordant, drop))
        return mcnemar_power(n, (psi + drop) / 2, (psi - drop) / 2, alpha)

    if power_at(1.0) < power:
        return None
    lo, hi = 0.0, 1.0
    while hi - lo > 1e-4:
        mid = (lo + hi) / 2
        if power_at(mid) >= power:
            hi = mid
        else:
            lo = mid
    return hi


@dataclass(frozen=True)
class PairedTest:
    """Paired comparison of two binary rates on the same items: model - base, its interval, p, detectable drop."""

    counts: PairedCounts
    diff: float
    ci: tuple[float, float]
    p_value: float
    alpha: float
    mde: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts.to_dict(), "diff": self.diff, "ci": list(self.ci),
                "p_value": self.p_value, "alpha": self.alpha, "mde": self.mde}


def paired_test(counts: PairedCounts, alpha: float = PAIRED_ALPHA, power: float = TARGET_POWER) -> PairedTest:
    """Exact McNemar p, Newcombe interval at 1 - alpha, and the drop detectable with `power` at this n and churn."""
    churn = counts.discordant / counts.n if counts.n else 0.0
    return PairedTest(
        counts=counts,
        diff=counts.diff,
        ci=paired_difference_ci(counts, alpha),
        p_value=mcnemar_exact(counts.only_base, counts.only_model),
        alpha=alpha,
        mde=minimum_detectable_drop(counts.n, alpha, power, churn),
    )
