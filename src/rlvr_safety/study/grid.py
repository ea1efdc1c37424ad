"""Expand a spec into a stage graph in dependency order (the runs themselves and their ids: spec.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .spec import RunSpec, StudySpec, expand_runs, slug

__all__ = ["RunSpec", "Stage", "check_order", "expand_runs", "plan", "reference_id", "slug"]


@dataclass(frozen=True)
class Stage:
    id: str
    kind: str  # guard | forecast | train | eval | certify | report
    deps: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def reference_id(base: str) -> str:
    return f"{slug(base)}_reference"


def plan(spec: StudySpec) -> list[Stage]:
    """Stages in dependency order: guard -> forecast -> train each method -> eval each model -> certify -> report."""
    runs = expand_runs(spec)
    stages: list[Stage] = []
    for base in spec.base_models:
        stages.append(Stage(f"guard:{slug(base)}", "guard", (), {"base": base}))
    for base, domain, beta in spec.forecast_points():
        stages.append(Stage(f"forecast:{slug(base)}:{domain}:b{beta:g}", "forecast", (f"guard:{slug(base)}",),
                            {"base": base, "domain": domain, "beta": beta}))
    for run in runs:
        stages.append(Stage(f"train:{run.id}", "train", (f"guard:{slug(run.base)}",), {"run": run}))
    for base in spec.base_models:
        stages.append(Stage(f"eval:{reference_id(base)}", "eval", (f"guard:{slug(base)}",),
                            {"model_id": reference_id(base), "base": base}))
    for run in runs:
        stages.append(Stage(f"eval:{run.id}", "eval", (f"train:{run.id}",), {"model_id": run.id, "run": run}))
    if spec.certificate.enabled:
        from_eval = spec.certificate.source == "eval"
        for run in runs:
            deps: tuple[str, ...] = (f"train:{run.id}", f"guard:{slug(run.base)}")
            if from_eval:  # scores the evals' samples
                deps += (f"eval:{run.id}", f"eval:{reference_id(run.base)}")
            stages.append(Stage(f"certify:{run.id}", "certify", deps, {"run": run}))
    stages.append(Stage("report", "report", tuple(s.id for s in stages), {}))
    return stages


def check_order(stages: list[Stage]) -> None:
    """Every dependency appears before its dependant (the runner executes in list order)."""
    seen: set[str] = set()
    for s in stages:
        missing = [d for d in s.deps if d not in seen]
        if missing:
            raise ValueError(f"stage {s.id} depends on {missing} which come later or not at all")
        seen.add(s.id)
