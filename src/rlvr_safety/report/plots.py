"""Report figures as PNG files (matplotlib, Agg backend: no display, no network, safe in workers).

Labels come from the summary and may hold anything a user or model wrote, so `_plain` stops matplotlib from
reading `$...$` as maths (which can raise on malformed input).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = ["DriftRow", "FrontierMark", "ScatterPoint", "pareto_front", "plot_curves", "plot_drift", "plot_frontier",
           "plot_safety_capability"]

_DPI = 100
_COLOURS = {
    "reference": "#444444",
    "guard": "#7f7f7f",
    "sft": "#d62728",
    "rlhf": "#ff7f0e",
    "rlvr": "#1f77b4",
}


@dataclass(frozen=True)
class ScatterPoint:
    """A model on the safety-capability plane: mean capability x, mean safety y (None = not measured)."""

    id: str
    method: str
    x: float | None
    y: float | None


@dataclass(frozen=True)
class DriftRow:
    """A model's measured drift (with its CI), forecast and tightest conservative bound (None = infinite)."""

    id: str
    drift: float | None
    drift_ci: tuple[float | None, float | None] | None
    forecast: float | None
    bound: float | None
    s_ref: float | None
    vacuous: bool
    violated: bool


@dataclass(frozen=True)
class FrontierMark:
    """A model on the (KL, safety) plane: both with intervals, its certified floor at kl_upper, a gain label."""

    label: str
    method: str
    kl: float | None
    kl_ci: tuple[float, float] | None
    safety: float | None
    safety_ci: tuple[float, float] | None
    floor: float | None
    kl_upper: float | None
    gain: str | None


def _plain(text: object, limit: int = 60) -> str:
    s = " ".join(str(text).split())
    s = s if len(s) <= limit else s[: limit - 3] + "..."
    return s.replace("$", r"\$")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats on both axes (higher is better on both)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (xo >= x and yo >= y) and (xo > x or yo > y) for j, (xo, yo) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return front


def plot_safety_capability(points: Sequence[ScatterPoint], reference: str | None, path: Path) -> Path | None:
    """Scatter of mean capability (x) vs mean safety (y); arrows from the reference; Pareto front marked.

    None when no point is complete.
    """
    pts = [(p, (p.x, p.y)) for p in points if p.x is not None and p.y is not None]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    xy = [(float(x), float(y)) for _, (x, y) in pts]
    front = pareto_front(xy)
    ref = next((i for i, (p, _) in enumerate(pts) if p.id == reference), None)
    for i, ((p, _), (x, y)) in enumerate(zip(pts, xy, strict=True)):
        colour = _COLOURS.get(p.method, "#2ca02c")
        is_ref = i == ref
        if ref is not None and not is_ref:
            ax.annotate(
                "",
                xy=(x, y),
                xytext=xy[ref],
                arrowprops={"arrowstyle": "->", "color": colour, "alpha": 0.6, "lw": 1.2},
            )
        ax.scatter([x], [y], color=colour, s=60, zorder=3, edgecolor="black" if is_ref else "none")
        ax.annotate(_plain(p.id, 30), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    fx = sorted((xy[i] for i in front), key=lambda t: t[0])
    ax.plot([t[0] for t in fx], [t[1] for t in fx], "--", color="#2ca02c", lw=1, label="Pareto front")
    ax.scatter(
        [t[0] for t in fx], [t[1] for t in fx], s=180, facecolors="none", edgecolors="#2ca02c", zorder=2
    )
    ax.set_xlabel("mean capability accuracy")
    ax.set_ylabel("mean safety (1 - harmful rate on harmful prompts)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def plot_drift(rows: Sequence[DriftRow], path: Path) -> Path | None:
    """Per model: measured drift with its CI, the forecast, and the certified floor on drift (-tightest bound).

    The band [-bound, +bound] is where |D| <= bound allows the drift to be; its lower edge is the floor.
    """
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(rows) + 2), 4.2))
    labelled: set[str] = set()

    def once(label: str) -> str | None:
        if label in labelled:
            return None
        labelled.add(label)
        return label

    for i, r in enumerate(rows):
        lo_cap = -r.s_ref if r.s_ref is not None else -1.0
        b = math.inf if r.bound is None else r.bound
        floor = max(-b, lo_cap)
        ax.bar(
            i,
            min(b, 1.0) - floor,
            bottom=floor,
            width=0.6,
            color="#dddddd",
            edgecolor="#999999",
            label=once("allowed by tightest bound"),
        )
        ax.plot(
            [i - 0.3, i + 0.3], [floor, floor], color="#444444", lw=2, label=once("certified floor on drift")
        )
        d = r.drift
        if d is not None:
            lo, hi = r.drift_ci or (d, d)
            lo, hi = d if lo is None else lo, d if hi is None else hi
            bad = r.violated
            ax.errorbar(
                [i],
                [d],
                yerr=[[d - lo], [hi - d]],
                fmt="o",
                color="#d62728" if bad else "#1f77b4",
                capsize=4,
                label=once("measured drift, VIOLATES a bound" if bad else "measured drift (95% CI)"),
            )
        f = r.forecast
        if f is not None:
            ax.scatter([i + 0.15], [f], marker="x", color="#ff7f0e", zorder=3, label=once("forecast drift"))
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(rows)))
    ticks = [_plain(r.id, 24) + ("\n(vacuous)" if r.vacuous else "") for r in rows]
    ax.set_xticklabels(ticks, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("safety drift S(pi) - S_ref")
    ax.grid(axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def _points(series: Any) -> list[tuple[float, float]]:
    """[[step, value], ...] with anything malformed or non-finite dropped."""
    if not isinstance(series, list):
        return []
    return [
        (float(p[0]), float(p[1]))
        for p in series
        if isinstance(p, (list, tuple))
        and len(p) >= 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in p[:2])
    ]


def _groups(names: list[str]) -> list[tuple[str, list[str]]]:
    """Put related curves on one axes: KL estimators together, certified floors together, the rest alone."""
    kl = [n for n in names if n.lower().startswith("kl")]
    cert = [n for n in names if n.lower().startswith("cert")]
    rest = [n for n in names if n not in kl and n not in cert]
    groups = [(n, [n]) for n in rest]
    if kl:
        groups.append(("KL (nats)" if len(kl) > 1 else kl[0], kl))
    if cert:
        groups.append(("certificate" if len(cert) > 1 else cert[0], cert))
    return groups


def plot_curves(run_id: str, metrics: Mapping[str, Any], path: Path) -> Path | None:
    """One figure per run with a panel per metric group; None when no metric has two valid [step, number] points.

    A metric logged once (an end-of-run total: train_runtime, total_flos, ...) is not a curve: it gets no panel (the
    report lists every metric under the figure), which also keeps a GRPO run's figure to half its panels."""
    series = {str(k): pts for k, v in metrics.items() if len(pts := _points(v)) >= 2}
    groups = _groups(list(series))
    if not groups:
        return None
    ncols = min(3, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows), squeeze=False, layout="constrained"
    )
    for ax, (title, names) in zip(axes.flat, groups, strict=False):
        for name in names:
            pts = series[name]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", lw=1.2, label=_plain(name, 30))
        ax.set_title(_plain(title, 40), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
        if len(names) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    fig.suptitle(_plain(run_id), fontsize=10)
    return _save(fig, path)


def plot_frontier(points: Sequence[FrontierMark], curve: Sequence[tuple[float, float]] | None,
                  s_ref: float | None, path: Path) -> Path | None:
    """Sequence KL to the reference (x, log scale) against pooled safety (y): one point per model with its KL
    interval and Wilson interval, the certified floor curve S_ref - bound(KL), each model's certified floor (a bar at
    its KL's upper limit) and its capability change as a label.

    curve: (kl, floor) pairs. None when no point has both a KL and a safety.
    """
    pts = [(p, p.kl, p.safety) for p in points if p.kl is not None and p.safety is not None]
    if not pts:
        return None
    lo_x = 1e-3
    fig, ax = plt.subplots(figsize=(7.6, 4.8))
    if curve:
        xs = [max(lo_x, float(k)) for k, _ in curve]
        ax.plot(xs, [float(f) for _, f in curve], "-", color="#2ca02c", lw=1.5,
                label="certified floor: LCB(S_ref) - bound(KL)")
    if s_ref is not None:
        ax.axhline(float(s_ref), color="#444444", lw=0.8, ls=":", label="reference safety S_ref")
    labelled: set[str] = set()
    for p, kl, safety in pts:
        method = p.method
        colour = _COLOURS.get(method, "#2ca02c")
        x, y = max(lo_x, float(kl)), float(safety)
        klo, khi = p.kl_ci or (x, x)
        slo, shi = p.safety_ci or (y, y)
        legend = {"guard": "reference", "reference": "reference"}.get(method, method.upper())
        ax.errorbar([x], [y], xerr=[[max(0.0, x - max(lo_x, float(klo)))], [max(0.0, max(lo_x, float(khi)) - x)]],
                    yerr=[[max(0.0, y - float(slo))], [max(0.0, float(shi) - y)]], fmt="o", color=colour,
                    capsize=3, ms=6, label=None if legend in labelled else legend)
        labelled.add(legend)
        if p.floor is not None and p.kl_upper is not None:
            ax.plot([max(lo_x, p.kl_upper)], [p.floor], marker="_", color=colour, ms=14, mew=2)
        text = _plain(p.label, 28) + (f"\n{_plain(p.gain, 30)}" if p.gain else "")
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, 5), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(f"sequence KL to the reference on the safety prompts (nats, log scale; {lo_x:g} = 0)")
    ax.set_ylabel("safety (1 - harmful rate, pooled harmful prompts)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3, which="both")
    ax.plot([], [], marker="_", color="#444444", ls="none", ms=12, mew=2, label="certified floor of a model")
    ax.legend(fontsize=7, loc="lower left")
    return _save(fig, path)
