"""The study spec: what to compare (models x domains x methods x betas x seeds) and how to measure it.

Validated with pydantic (unknown keys rejected), loaded from YAML or a named preset; errors are one line.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import UserError

Domain = Literal["arithmetic", "gsm8k", "math", "code", "ifeval"]
DOMAIN_TASKS = {"arithmetic": "arithmetic", "gsm8k": "gsm8k-train", "math": "math-train", "code": "mbpp",
                "ifeval": "ifeval"}
RL_ALGORITHMS = ("grpo", "dr_grpo", "dapo", "bnpo", "rloo", "reinforce_pp", "ppo")
METHOD_RE = re.compile(r"^(sft|(rlhf|rlvr):([a-z_]+))$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GuardSettings(_Strict):
    """`auto`: train the guard stage only when the base model refuses less than `threshold` of held-out harmful
    prompts (the untouched default model refuses almost none, so the demo gets guardrails to lose)."""

    mode: Literal["auto", "on", "off"] = "auto"
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    probe_benchmark: str = "advbench"
    probe_n: int = Field(default=16, ge=1)
    config: dict[str, Any] = Field(default_factory=dict, description="guard recipe settings (training/config.py)")


class EvalSettings(_Strict):
    suites: list[str] = Field(default_factory=lambda: ["safety5", "capability"])
    limit: int | None = Field(default=20, ge=1)
    capability_limit: int | None = Field(default=None, ge=1, description="None = same as limit")
    judge: str = "keyword"
    max_new_tokens: int = Field(default=96, ge=1)
    capability_max_new_tokens: int = Field(default=256, ge=1)
    batch_size: int = Field(default=16, ge=1)
    extra_benchmarks: list[str] = Field(default_factory=list, description="e.g. arithmetic (the training domain)")
    second_judges: list[str] = Field(
        default_factory=lambda: ["auto"],
        description="judges run again on the same responses, their agreement with `judge` reported per benchmark "
        "('auto' = keyword, or learned when judge is keyword; [] = none)")


class ForecastSettings(_Strict):
    enabled: bool = True
    k: int = Field(default=4, ge=2)
    limit: int = Field(default=16, ge=1)
    max_new_tokens: int = Field(default=48, ge=1)


class CertificateSettings(_Strict):
    enabled: bool = True
    limit: int = Field(default=8, ge=1, description="probe prompts per safety benchmark")
    measure: bool = True
    max_new_tokens: int = Field(default=48, ge=1)


class StudySpec(_Strict):
    name: str = "study"
    base_models: list[str] = Field(default_factory=lambda: ["default"], min_length=1)
    guard: GuardSettings = Field(default_factory=GuardSettings)
    domains: list[Domain] = Field(default_factory=lambda: list[Domain](["arithmetic"]), min_length=1)
    methods: list[str] = Field(default_factory=lambda: ["sft", "rlvr:grpo"], min_length=1)
    betas: list[float] = Field(default_factory=lambda: [0.05], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    train: dict[str, Any] = Field(default_factory=dict, description="settings shared by every training recipe")
    method_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per method ('sft', 'rlhf', 'rlvr' or e.g. 'rlvr:rloo') settings")
    eval: EvalSettings = Field(default_factory=EvalSettings)
    forecast: ForecastSettings = Field(default_factory=ForecastSettings)
    certificate: CertificateSettings = Field(default_factory=CertificateSettings)
    data_dir: str | None = None

    def train_common(self) -> dict[str, Any]:
        """Settings every training run of the grid shares (the guard stage has its own `guard.config`)."""
        common = dict(self.train)
        if self.data_dir is not None:
            common.setdefault("data_dir", self.data_dir)
        return common

    @field_validator("methods")
    @classmethod
    def _methods(cls, methods: list[str]) -> list[str]:
        for m in methods:
            match = METHOD_RE.match(m)
            if not match:
                raise ValueError(f"method {m!r} must be 'sft', 'rlhf:<algorithm>' or 'rlvr:<algorithm>'")
            if match.group(3) and match.group(3) not in RL_ALGORITHMS:
                raise ValueError(f"unknown algorithm {match.group(3)!r} in {m!r}; choose from {', '.join(RL_ALGORITHMS)}")
        if len(set(methods)) != len(methods):
            raise ValueError("methods are listed twice")
        return methods

    @field_validator("betas")
    @classmethod
    def _betas(cls, betas: list[float]) -> list[float]:
        if any(b < 0 for b in betas):
            raise ValueError("betas must be >= 0 (the thesis is KL-constrained RLVR; 0 is allowed)")
        return betas


def _one_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "spec"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse_spec(data: dict[str, Any], origin: str) -> StudySpec:
    try:
        return StudySpec.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"invalid study spec {origin}: {_one_line(exc)}") from None


def list_presets() -> list[str]:
    folder = resources.files("rlvr_safety.study") / "presets"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_spec(preset: str | None = None, config: str | Path | None = None) -> StudySpec:
    """Exactly one of preset / config; the YAML's keys are StudySpec's fields."""
    if (preset is None) == (config is None):
        raise UserError("pass exactly one of --preset NAME or --config FILE")
    if preset is not None:
        if preset not in list_presets():
            raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(list_presets())}")
        text = (resources.files("rlvr_safety.study") / "presets" / f"{preset}.yaml").read_text()
        origin = f"preset {preset}"
    else:
        path = Path(config)  # type: ignore[arg-type]
        if not path.is_file():
            raise UserError(f"study config not found: {path}")
        text, origin = path.read_text(), str(path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"cannot parse {origin} as YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{origin} must be a YAML mapping of study settings")
    return parse_spec(data, origin)
