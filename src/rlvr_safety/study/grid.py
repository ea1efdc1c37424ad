"""Expand a spec into runs with stable ids, and runs into a stage graph in dependency order.

Ids depend only on the run's own coordinates (base model, method, domain, beta, seed), so adding a beta or a seed
to a spec keeps every existing run's id, folder and stored results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .spec import StudySpec


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "model"


@dataclass(frozen=True)
class RunSpec:
    base: str
    domain: str
    method: str  # sft | rlhf | rlvr
    algorithm: str | None
    beta: float | None
    seed: int

    @property
    def id(self) -> str:
        name = self.method if self.algorithm is None else f"{self.method}-{self.algorithm}"
        beta = "" if self.beta is None else f"_b{self.beta:g}"
        return f"{slug(self.base)}_{name}_{self.domain}{beta}_s{self.seed}"

    @property
    def label(self) -> str:
        return self.method if self.algorithm is None else f"{self.method}:{self.algorithm}"


def expand_runs(spec: StudySpec) -> list[RunSpec]:
    """The grid; SFT has no KL coefficient, so it is expanded over seeds only (no duplicate runs per beta)."""
    runs: list[RunSpec] = []
    seen: set[str] = set()
    for base in spec.base_models:
        for domain in spec.domains:
            for method in spec.methods:
                kind, _, algorithm = method.partition(":")
                for beta in spec.betas:
                    for seed in spec.seeds:
                        run = RunSpec(base, domain, kind, algorithm or None, None if kind == "sft" else beta, seed)
                        if run.id not in seen:
                            seen.add(run.id)
                            runs.append(run)
    return runs


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
    if spec.forecast.enabled:
        for base in spec.base_models:
            for domain in spec.domains:
                for beta in sorted({r.beta for r in runs if r.base == base and r.beta is not None and r.beta > 0}):
                    stages.append(Stage(f"forecast:{slug(base)}:{domain}:b{beta:g}", "forecast",
                                        (f"guard:{slug(base)}",), {"base": base, "domain": domain, "beta": beta}))
    for run in runs:
        stages.append(Stage(f"train:{run.id}", "train", (f"guard:{slug(run.base)}",), {"run": run}))
    for base in spec.base_models:
        stages.append(Stage(f"eval:{reference_id(base)}", "eval", (f"guard:{slug(base)}",),
                            {"model_id": reference_id(base), "base": base}))
    for run in runs:
        stages.append(Stage(f"eval:{run.id}", "eval", (f"train:{run.id}",), {"model_id": run.id, "run": run}))
    if spec.certificate.enabled:
        for run in runs:
            stages.append(Stage(f"certify:{run.id}", "certify", (f"train:{run.id}", f"guard:{slug(run.base)}"),
                                {"run": run}))
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
