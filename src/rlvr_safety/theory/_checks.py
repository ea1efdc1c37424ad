"""Input validation and JSON helpers shared by the theory modules.

Errors are ValueError with a message naming the argument, so bad data fails loudly instead of yielding a
silently wrong bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

NORM_TOL = 1e-8

FloatArray = NDArray[np.float64]


def as_beta(beta: float) -> float:
    """beta is the KL coefficient; the tilt is undefined at beta <= 0."""
    try:
        value = float(beta)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"beta must be a positive number, got {beta!r}") from exc
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"beta must be a positive finite number, got {beta!r}")
    return value


def as_vector(x: ArrayLike, name: str) -> FloatArray:
    """A non-empty finite 1-D float array."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def as_distribution(p: ArrayLike, name: str = "p") -> FloatArray:
    """A probability vector: non-negative and summing to 1 within NORM_TOL (then renormalised exactly)."""
    arr = as_vector(p, name)
    if np.any(arr < 0):
        raise ValueError(f"{name} has negative entries (min {arr.min():.3g}); probabilities must be >= 0")
    total = float(arr.sum())
    if abs(total - 1.0) > NORM_TOL:
        raise ValueError(f"{name} must sum to 1 (tolerance {NORM_TOL:g}), got sum {total:.12g}")
    return arr / total


def as_unit(x: ArrayLike, name: str, like: np.ndarray | None = None) -> FloatArray:
    """Scores in [0, 1]: the bounds assume this range, so anything else is a caller bug."""
    arr = as_vector(x, name)
    if like is not None and arr.shape != like.shape:
        raise ValueError(f"{name} has shape {arr.shape} but the distribution has shape {like.shape}")
    if np.any(arr < 0) or np.any(arr > 1):
        raise ValueError(f"{name} must lie in [0, 1], got range [{arr.min():.3g}, {arr.max():.3g}]")
    return arr


def as_alpha(alpha: float) -> float:
    value = float(alpha)
    if not 0 < value < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return value


def jsonable(obj: Any) -> Any:
    """Plain Python for json.dumps(allow_nan=False): numpy scalars/arrays unwrapped, non-finite floats -> None."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (str, bytes)):
        return obj
    if isinstance(obj, Sequence):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if obj is None:
        return None
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")
