"""Pre-training forecast: will RLVR at this beta move safety on this data? (DESIGN.md section 2, use 1.)

From K reference samples per prompt, scored for success g and safety s, the optimum's safety is estimated by
tilting the empirical reference distribution (self-normalised weights e^{g/beta}). Prompts whose samples show
Cov(s, e^{g/beta}) != 0 are "dual-use": only they can drift, since the drift at the optimum is exactly
Cov_ref(s, e^{g/beta}) / Z. For binary g this is the same as Cov(s, g) != 0; for rewards in [0, 1] it is not
(g = [0, .5, 1], s = [1, 0, 1], beta = 0.2: Cov(s, g) = 0, drift +0.258). Cov(s, g) is still reported, as `cov`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rlvr_safety.theory._checks import FloatArray, as_alpha, as_beta, as_unit, jsonable
from rlvr_safety.theory.estimators import bootstrap_ci

__all__ = ["Forecast", "forecast"]


def _rows(x: Sequence[ArrayLike] | NDArray[Any], name: str) -> list[FloatArray]:
    if isinstance(x, np.ndarray):
        if x.ndim != 2:
            raise ValueError(f"{name} must be 2-D (prompts x samples) or a list of 1-D arrays, got {x.shape}")
        rows = list(x)
    else:
        rows = list(x)
    if not rows:
        raise ValueError(f"{name} must contain at least one prompt")
    return [as_unit(row, f"{name}[{i}]") for i, row in enumerate(rows)]


@dataclass(frozen=True)
class Forecast:
    """Per-prompt and aggregate forecast; arrays are indexed by prompt."""

    beta: float
    ref_safety: FloatArray
    optimum_safety: FloatArray
    drift: FloatArray
    cov: FloatArray
    cov_tilt: FloatArray
    dual_use: NDArray[np.bool_]
    optimum_bound: FloatArray
    n_samples: NDArray[np.int64]
    mean_ref_safety: float
    mean_optimum_safety: float
    mean_drift: float
    drift_ci: tuple[float, float]
    mean_optimum_bound: float
    dual_use_fraction: float
    top_dual_use: list[dict[str, Any]]
    cov_tol: float
    alpha: float
    n_resamples: int
    seed: int
    prompt_ids: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def n_prompts(self) -> int:
        return int(self.drift.size)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "beta": self.beta,
                "n_prompts": self.n_prompts,
                "mean_ref_safety": self.mean_ref_safety,
                "mean_optimum_safety": self.mean_optimum_safety,
                "mean_drift": self.mean_drift,
                "drift_ci": list(self.drift_ci),
                "mean_optimum_bound": self.mean_optimum_bound,
                "dual_use_fraction": self.dual_use_fraction,
                "top_dual_use": self.top_dual_use,
                "cov_tol": self.cov_tol,
                "alpha": self.alpha,
                "n_resamples": self.n_resamples,
                "seed": self.seed,
                "prompt_ids": self.prompt_ids,
                "per_prompt": {
                    "ref_safety": self.ref_safety,
                    "optimum_safety": self.optimum_safety,
                    "drift": self.drift,
                    "cov": self.cov,
                    "cov_tilt": self.cov_tilt,
                    "dual_use": self.dual_use,
                    "optimum_bound": self.optimum_bound,
                    "n_samples": self.n_samples,
                },
                "notes": self.notes,
            }
        )


def forecast(
    g: Sequence[ArrayLike] | NDArray[Any],
    s: Sequence[ArrayLike] | NDArray[Any],
    beta: float,
    *,
    prompt_ids: Sequence[str] | None = None,
    cov_tol: float = 1e-9,
    top_k: int = 10,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Forecast:
    """Forecast the RLVR optimum's safety per prompt from K reference samples (g[i], s[i] each of length K_i).

    The CI resamples prompts (the unit the claim is about); within-prompt sampling noise enters through the
    spread of the per-prompt estimates but small K also biases each of them (see forecast_safety).

    A prompt is dual-use when |Cov(s, e^{g/beta}) / Z| > cov_tol, Z = mean(e^{g/beta}) over its samples (`cov_tilt`:
    scale-free, and on the empirical distribution it equals the forecast drift). `cov` is Cov(s, g), which decides
    dual-use only for binary g.
    """
    b = as_beta(beta)
    a = as_alpha(alpha)
    if cov_tol < 0:
        raise ValueError(f"cov_tol must be >= 0, got {cov_tol!r}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k!r}")
    g_rows = _rows(g, "g")
    s_rows = _rows(s, "s")
    if len(g_rows) != len(s_rows):
        raise ValueError(f"g has {len(g_rows)} prompts but s has {len(s_rows)}")
    ids = None if prompt_ids is None else [str(x) for x in prompt_ids]
    if ids is not None and len(ids) != len(g_rows):
        raise ValueError(f"prompt_ids has {len(ids)} entries but there are {len(g_rows)} prompts")

    n = len(g_rows)
    ref, opt, cov, cov_tilt, gain, counts = (np.empty(n) for _ in range(6))
    for i, (gi, si) in enumerate(zip(g_rows, s_rows, strict=True)):
        if gi.shape != si.shape:
            raise ValueError(f"prompt {i}: g has {gi.size} samples but s has {si.size}")
        logw = gi / b
        w = np.exp(logw - logw.max())  # e^{g/beta} up to a constant factor, which cancels in Cov(s, w) / mean(w)
        cov_tilt[i] = float(np.mean((si - si.mean()) * (w - w.mean())) / w.mean())
        w /= w.sum()
        ref[i] = si.mean()
        opt[i] = float(np.dot(w, si))
        cov[i] = float(np.mean((si - si.mean()) * (gi - gi.mean())))
        gain[i] = max(0.0, float(np.dot(w, gi)) - float(gi.mean()))
        counts[i] = gi.size
    drift = opt - ref
    dual = np.abs(cov_tilt) > cov_tol
    _, lo, hi = bootstrap_ci(drift, np.mean, n_resamples=n_resamples, alpha=a, seed=seed)

    order = sorted(np.flatnonzero(dual), key=lambda i: -abs(cov_tilt[i]))[:top_k]
    top = [
        {
            "index": int(i),
            "prompt_id": None if ids is None else ids[i],
            "cov": float(cov[i]),
            "cov_tilt": float(cov_tilt[i]),
            "drift": float(drift[i]),
        }
        for i in order
    ]
    notes = []
    if np.any(counts < 8):
        notes.append("some prompts have < 8 samples: their forecasts are noisy and biased toward zero drift")
    return Forecast(
        beta=b,
        ref_safety=ref,
        optimum_safety=opt,
        drift=drift,
        cov=cov,
        cov_tilt=cov_tilt,
        dual_use=dual,
        optimum_bound=np.sqrt(gain / (2 * b)),
        n_samples=counts.astype(np.int64),
        mean_ref_safety=float(ref.mean()),
        mean_optimum_safety=float(opt.mean()),
        mean_drift=float(drift.mean()),
        drift_ci=(lo, hi),
        mean_optimum_bound=math.sqrt(float(gain.mean()) / (2 * b)),
        dual_use_fraction=float(dual.mean()),
        top_dual_use=top,
        cov_tol=float(cov_tol),
        alpha=a,
        n_resamples=int(n_resamples),
        seed=int(seed),
        prompt_ids=ids,
        notes=notes,
    )
