"""The certificate's level measured against ground truth: simulated worlds where S(policy) is known exactly.

A floor "at 95%" is a claim about repeated use: over many certificates, at most 5% may lie above the true safety
of the policy they certify. This module builds such worlds (a reference p over a small space of sequences, an
unsafe subset, a policy q that is an exponential tilt of p toward unsafe outputs plus random distortion),
draws the samples `certify` sees (judged reference samples, policy samples with their exact log-ratios) and
counts how often the floor exceeds the known S(q). Pure numpy, seeded: the same call gives the same numbers.

Used by the test that guards the level (tests/test_theory_coverage.py) and by scripts/certificate_coverage.py,
whose output is the table in docs/theory.md.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from rlvr_safety.theory._checks import FloatArray, as_alpha, jsonable
from rlvr_safety.theory.certificate import Certificate, certify
from rlvr_safety.theory.tilting import bretagnolle_huber_bound, chi2_bound, pinsker_bound

__all__ = ["CoverageCell", "CoverageReport", "World", "make_world", "naive_floor", "simulate_coverage"]

# The grid the simulation draws from; each trial picks one value of each uniformly.
REFERENCE_SHAPES = (0.5, 1.5, 3.0)  # spread of log p over sequences (flat -> peaked)
UNSAFE_MASS = (0.0, 0.02, 0.1, 0.3, 0.6)  # P_ref(unsafe); 0 and 0.02 give all-safe reference samples
TILTS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)  # log-odds push toward unsafe sequences
DISTORTIONS = (0.0, 0.5, 1.5)  # sd of random log-weight noise added to the tilt (moves q without touching s)
SAMPLE_SIZES = (12, 24, 64)
VOCAB, LENGTH = 4, 3  # 64 sequences
SMALL_KL = 0.01  # "the policy barely moved" (well under 0.05 nats): power is measured below this true KL
TOL = 1e-9  # q == p gives a true KL of ~1e-17 from rounding; a limit of exactly 0 does not miss it


@dataclass(frozen=True)
class World:
    """A reference p, a policy q, safety scores s per sequence, and the exact quantities the certificate estimates."""

    p: FloatArray
    q: FloatArray
    s: FloatArray
    s_ref: float
    s_policy: float
    kl: float


def make_world(rng: np.random.Generator, shape: float, unsafe_mass: float, tilt: float, distortion: float,
               graded: bool = False) -> World:
    """One world: log p ~ N(0, shape) over VOCAB**LENGTH sequences; unsafe sequences drawn until their mass
    reaches `unsafe_mass`; q = p e^{tilt * unsafe + distortion * N(0, 1)} / Z. Graded worlds give each sequence a
    score in [0, 1] (a judge's probability) instead of 0/1."""
    m = VOCAB**LENGTH
    logp = rng.normal(0.0, shape, m)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    unsafe = np.zeros(m, dtype=bool)
    mass = 0.0
    for i in rng.permutation(m):
        if mass >= unsafe_mass:
            break
        unsafe[i] = True
        mass += p[i]
    if graded:
        s = np.where(unsafe, rng.uniform(0.0, 0.4, m), rng.uniform(0.6, 1.0, m))
    else:
        s = np.where(unsafe, 0.0, 1.0)
    logq = np.log(p) + tilt * unsafe + distortion * rng.normal(0.0, 1.0, m)
    q = np.exp(logq - logq.max())
    q /= q.sum()
    kl = float(np.sum(q * (np.log(q) - np.log(p))))
    return World(p=p, q=q, s=s, s_ref=float(p @ s), s_policy=float(q @ s), kl=max(0.0, kl))


@dataclass
class CoverageCell:
    """Counts for one (unsafe mass, n) group of trials."""

    unsafe_mass: float
    n: int
    trials: int = 0
    violations: int = 0
    nonvacuous: int = 0
    slack_sum: float = 0.0

    @property
    def rate(self) -> float:
        return self.violations / self.trials if self.trials else math.nan

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"unsafe_mass": self.unsafe_mass, "n": self.n, "trials": self.trials,
                         "violations": self.violations, "rate": self.rate, "nonvacuous": self.nonvacuous,
                         "mean_slack": self.slack_sum / self.trials if self.trials else None})


@dataclass
class CoverageReport:
    """Violation rate of the floor (floor > true S(policy)) and power (non-vacuous floors where q barely moved)."""

    alpha: float
    trials: int = 0
    violations: int = 0
    small_kl_trials: int = 0
    small_kl_nonvacuous: int = 0
    kl_upper_misses: int = 0
    s_lower_misses: int = 0
    naive_violations: int = 0
    kl_misses_by_n: dict[int, list[int]] = field(default_factory=dict)  # n -> [misses, trials]
    floor_bounds: dict[str, int] = field(default_factory=dict)
    cells: dict[tuple[float, int], CoverageCell] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.violations / self.trials if self.trials else math.nan

    @property
    def rate_upper(self) -> float:
        """One-sided 95% Clopper-Pearson upper limit of the violation rate: the Monte Carlo slack."""
        if self.violations == self.trials:
            return 1.0
        return float(stats.beta.ppf(0.95, self.violations + 1, self.trials - self.violations))

    @property
    def naive_rate(self) -> float:
        """Violation rate of the point-estimate floor this project shipped before (shows the simulation has teeth)."""
        return self.naive_violations / self.trials if self.trials else math.nan

    @property
    def power(self) -> float:
        """Share of non-vacuous floors among trials with true KL < SMALL_KL nats and n >= 24."""
        return self.small_kl_nonvacuous / self.small_kl_trials if self.small_kl_trials else math.nan

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "alpha": self.alpha, "trials": self.trials, "violations": self.violations, "rate": self.rate,
            "rate_upper_95": self.rate_upper, "kl_upper_misses": self.kl_upper_misses,
            "s_lower_misses": self.s_lower_misses, "naive_violations": self.naive_violations,
            "naive_rate": self.naive_rate, "small_kl_trials": self.small_kl_trials,
            "power": self.power, "floor_bounds": self.floor_bounds,
            "kl_miss_rate_by_n": {n: m / t for n, (m, t) in sorted(self.kl_misses_by_n.items()) if t},
            "cells": [c.to_dict() for c in self.cells.values()],
        })


def naive_floor(cert: Certificate) -> float:
    """The floor as first shipped: point S_ref, point sample variance in chi2, percentile-bootstrap limits."""
    kl_hi = max(0.0, cert.kl_k1_ci[1])
    bound = min(pinsker_bound(kl_hi), bretagnolle_huber_bound(kl_hi),
                chi2_bound(cert.var_ref, cert.chi2_upper) if cert.var_ref > 0 else 0.0)
    return max(0.0, cert.s_ref - bound)


def simulate_coverage(n_trials: int, *, alpha: float = 0.05, seed: int = 0,
                      sizes: Sequence[int] = SAMPLE_SIZES, graded_share: float = 0.25,
                      n_resamples: int = 400) -> CoverageReport:
    """Run `n_trials` certificates in random worlds from the grid above and count how often each kind of error
    happens. Per trial: n judged reference samples from p, n policy samples from q with exact log-ratios."""
    a = as_alpha(alpha)
    rng = np.random.default_rng(seed)
    report = CoverageReport(alpha=a)
    for size, mass in itertools.product(sizes, UNSAFE_MASS):
        report.cells[(mass, int(size))] = CoverageCell(unsafe_mass=mass, n=int(size))
    for trial in range(int(n_trials)):
        shape = float(rng.choice(REFERENCE_SHAPES))
        mass = float(rng.choice(UNSAFE_MASS))
        tilt = float(rng.choice(TILTS))
        distortion = float(rng.choice(DISTORTIONS))
        n = int(rng.choice(sizes))
        world = make_world(rng, shape, mass, tilt, distortion, graded=bool(rng.random() < graded_share))
        m = world.p.size
        ref_idx = rng.choice(m, size=n, p=world.p)
        pol_idx = rng.choice(m, size=n, p=world.q)
        ratios = np.log(world.q[pol_idx]) - np.log(world.p[pol_idx])
        cert = certify(world.s[ref_idx], seq_log_ratios=ratios, alpha=a, seed=seed + trial,
                       n_resamples=n_resamples)
        violated = cert.floor > world.s_policy + TOL
        report.trials += 1
        report.violations += int(violated)
        kl_miss = int(cert.kl_upper < world.kl - TOL)
        report.kl_upper_misses += kl_miss
        by_n = report.kl_misses_by_n.setdefault(n, [0, 0])
        by_n[0] += kl_miss
        by_n[1] += 1
        report.s_lower_misses += int(cert.s_ref_lower > world.s_ref + TOL)
        report.floor_bounds[cert.floor_bound] = report.floor_bounds.get(cert.floor_bound, 0) + int(cert.floor > 0)
        report.naive_violations += int(naive_floor(cert) > world.s_policy + TOL)
        if world.kl < SMALL_KL and n >= 24:
            report.small_kl_trials += 1
            report.small_kl_nonvacuous += int(cert.floor > 0)
        cell = report.cells[(mass, n)]
        cell.trials += 1
        cell.violations += int(violated)
        cell.nonvacuous += int(cert.floor > 0)
        cell.slack_sum += world.s_policy - cert.floor
    return report
