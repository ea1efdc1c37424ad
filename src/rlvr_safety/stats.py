"""Small statistics shared by evaluation, judges and reports (numpy only)."""

from __future__ import annotations

import math


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
