"""Monte Carlo estimators of the theory's quantities from samples: sequence KL, chi-square, the SNIS forecast.

All inputs are token log-probs of sequences sampled from the policy (at temperature 1 and without top-k/top-p,
otherwise the samples are not from the distribution the log-probs describe and the estimates are biased).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rlvr_safety.theory._checks import FloatArray, as_alpha, as_beta, as_unit, as_vector, jsonable

__all__ = [
    "KLEstimate",
    "bootstrap_ci",
    "chi2_estimate",
    "forecast_safety",
    "sequence_kl",
    "sequence_log_ratios",
    "token_log_ratios",
]

# exp() of anything above this overflows float64.
_MAX_EXP = math.log(np.finfo(np.float64).max)

TokenArrays = Sequence[ArrayLike] | NDArray[Any]


def _pad(x: TokenArrays, name: str) -> tuple[FloatArray, NDArray[np.bool_]]:
    if isinstance(x, np.ndarray) and x.ndim == 2:
        arr = x.astype(np.float64)
        return arr, np.ones(arr.shape, dtype=bool)
    if isinstance(x, np.ndarray) or not isinstance(x, Sequence):
        raise ValueError(f"{name} must be a list of 1-D arrays or a 2-D (sequences x tokens) array")
    rows = [np.asarray(row, dtype=np.float64) for row in x]
    if not rows:
        raise ValueError(f"{name} must contain at least one sequence")
    if any(row.ndim != 1 for row in rows):
        raise ValueError(f"{name}: every sequence must be a 1-D array of token log-probs")
    width = max(row.size for row in rows)
    arr = np.zeros((len(rows), width))
    mask = np.zeros((len(rows), width), dtype=bool)
    for i, row in enumerate(rows):
        arr[i, : row.size] = row
        mask[i, : row.size] = True
    return arr, mask


def token_log_ratios(
    logp: TokenArrays, logq: TokenArrays, mask: ArrayLike | None = None
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Per-token r = logp - logq as a padded 2-D array (zeros outside the mask) and its boolean mask."""
    lp, mp = _pad(logp, "logp")
    lq, mq = _pad(logq, "logq")
    if lp.shape != lq.shape or not np.array_equal(mp, mq):
        raise ValueError(f"logp and logq have mismatched shapes/lengths: {lp.shape} vs {lq.shape}")
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != lp.shape:
            raise ValueError(f"mask has shape {m.shape} but the log-prob arrays have shape {lp.shape}")
        mp = mp & m.astype(bool)
    if lp.shape[0] == 0:
        raise ValueError("logp must contain at least one sequence")
    if not (np.all(np.isfinite(lp[mp])) and np.all(np.isfinite(lq[mp]))):
        raise ValueError("logp/logq contain NaN or infinite values at unmasked tokens")
    if np.any(lp[mp] > 1e-3) or np.any(lq[mp] > 1e-3):
        raise ValueError("log-probs must be <= 0; pass log-probabilities, not logits or probabilities")
    r = np.where(mp, lp - lq, 0.0)
    return r, mp


def sequence_log_ratios(logp: TokenArrays, logq: TokenArrays, mask: ArrayLike | None = None) -> FloatArray:
    """log pi(y)/pi_ref(y) per sequence: the sum of its token log-ratios."""
    r, _ = token_log_ratios(logp, logq, mask)
    return r.sum(axis=1)


@dataclass(frozen=True)
class KLEstimate:
    """Schulman's k1/k2/k3 applied per token and summed per sequence (so each estimates sequence-level KL).

    k1 and k3 are unbiased for KL(pi || ref); k3 is never negative and has lower variance when pi is close to
    ref; k2 is biased (exact only to second order) and is kept for comparison with training logs.
    """

    k1: FloatArray
    k2: FloatArray
    k3: FloatArray
    n_tokens: NDArray[np.int64]

    @property
    def n_sequences(self) -> int:
        return int(self.k1.size)

    @property
    def k1_mean(self) -> float:
        return float(self.k1.mean())

    @property
    def k2_mean(self) -> float:
        return float(self.k2.mean())

    @property
    def k3_mean(self) -> float:
        return float(self.k3.mean())

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "n_sequences": self.n_sequences,
                "k1_mean": self.k1_mean,
                "k2_mean": self.k2_mean,
                "k3_mean": self.k3_mean,
                "k1": self.k1,
                "k2": self.k2,
                "k3": self.k3,
                "n_tokens": self.n_tokens,
            }
        )


def sequence_kl(logp: TokenArrays, logq: TokenArrays, mask: ArrayLike | None = None) -> KLEstimate:
    """Sequence-level KL(pi || ref) estimates from token log-probs of pi-sampled sequences."""
    r, m = token_log_ratios(logp, logq, mask)
    k1 = r.sum(axis=1)
    k2 = (0.5 * r * r).sum(axis=1)
    # r is 0 off-mask, so those cells contribute exp(0) - 1 + 0 = 0. Overflow (r << 0) becomes +inf.
    with np.errstate(over="ignore"):
        k3 = (np.expm1(-r) + r).sum(axis=1)
    return KLEstimate(k1=k1, k2=k2, k3=k3, n_tokens=m.sum(axis=1).astype(np.int64))


def chi2_estimate(seq_log_ratios: ArrayLike) -> float:
    """chi2(pi || ref) = E_pi[pi/ref] - 1 from sequence log-ratios; +inf when the mean ratio overflows.

    Heavy-tailed: one sequence with a large log-ratio dominates the mean, so the estimate is noisy, tends to
    be low at small n (the tail is rarely sampled) and can even be negative; treat it with caution.
    """
    lr = as_vector(seq_log_ratios, "seq_log_ratios")
    top = float(lr.max())
    log_mean = top + math.log(float(np.mean(np.exp(lr - top))))
    if log_mean > _MAX_EXP:
        return math.inf
    return math.expm1(log_mean)


def forecast_safety(g: ArrayLike, s: ArrayLike, beta: float) -> float:
    """Self-normalised IS estimate of S(pi*) from reference samples: sum w s / sum w with w = e^{g/beta}.

    It reweights only the paths the reference actually sampled, so it is biased toward S(pi_ref) when the
    successful paths are rare among the K samples; increase K until the forecast stabilises.
    """
    gg = as_unit(g, "g")
    ss = as_unit(s, "s", like=gg)
    b = as_beta(beta)
    logw = gg / b
    w = np.exp(logw - logw.max())
    return float(np.dot(w, ss) / w.sum())


def bootstrap_ci(
    values: ArrayLike | Callable[[NDArray[np.intp]], float],
    stat: Callable[[Any], float] = np.mean,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    *,
    n: int | None = None,
) -> tuple[float, float, float]:
    """Percentile bootstrap: (estimate, lo, hi) of stat over resampled units.

    values is either an array (rows resampled along axis 0 and passed to stat) or a callable that takes an
    index array and returns the statistic (then n, the number of units, is required and stat is unused).
    Uses the lower/higher order statistics rather than interpolation, so infinite resamples stay well defined.
    """
    a = as_alpha(alpha)
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples!r}")
    if callable(values):
        if n is None or int(n) < 1:
            raise ValueError("bootstrap_ci with a callable needs n >= 1, the number of units to resample")
        size = int(n)
        fn: Callable[[NDArray[np.intp]], float] = values
    else:
        arr = np.asarray(values)
        if arr.ndim == 0 or arr.shape[0] == 0:
            raise ValueError("bootstrap_ci needs at least one value")
        size = arr.shape[0]

        def fn(idx: NDArray[np.intp]) -> float:
            return float(stat(arr[idx]))

    rng = np.random.default_rng(seed)
    estimate = float(fn(np.arange(size)))
    stats = np.empty(int(n_resamples))
    for i in range(int(n_resamples)):
        stats[i] = fn(rng.integers(0, size, size=size))
    if np.any(np.isnan(stats)):
        raise ValueError("the statistic returned NaN on a bootstrap resample")
    lo = float(np.quantile(stats, a / 2, method="lower"))
    hi = float(np.quantile(stats, 1 - a / 2, method="higher"))
    return estimate, lo, hi
