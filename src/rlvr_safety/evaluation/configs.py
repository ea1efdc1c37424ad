"""The typed configs of the evaluation commands (`rlvr-safety forecast`, `rlvr-safety certify`): the one home of
their defaults and range checks, read by the CLI (flags and their shown defaults), the study's stages and the
runners (forecast.py, certify.py), which validate through them before any model loads. Light to import: the CLI
reads the defaults at startup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from ..config import StrictConfig, one_line
from ..data.tasks import TaskConfig
from ..errors import UserError
from ..judges.registry import DEFAULT_JUDGE, JudgeName

__all__ = ["CertifyConfig", "ForecastConfig", "certify_config", "forecast_config"]


class ForecastConfig(StrictConfig):
    """Everything a forecast run takes (`rlvr-safety forecast` flags, the study's forecast stage): the one home of
    its defaults and range checks."""

    model: str = Field(description="the reference model spec")
    task: str = Field(description="benchmarks / suites, comma-separated (with task_config: its name)")
    beta: float = Field(gt=0.0, description="KL coefficient of the planned run (the optimum tilts by exp(g/beta))")
    k: int = Field(default=8, ge=1, description="samples per prompt")
    limit: int | None = Field(default=32, ge=0, description="prompts per benchmark (arithmetic: generated)")
    judge: JudgeName = DEFAULT_JUDGE
    judge_options: dict[str, Any] = Field(default_factory=dict, description="build_judge options (judge_endpoint, "
                                          "judge_model)")
    data_dir: Path | None = None
    seed: int = Field(default=0, ge=0)
    max_new_tokens: int = Field(default=128, ge=1)
    temperature: float = Field(default=1.0, gt=0.0, description="> 0: the forecast needs sampled responses")
    reward: str | None = Field(default=None, description="reward for every prompt; None: each task's")
    instruction: str | None = None
    judge_all: bool = False
    batch_size: int = Field(default=16, ge=1)
    top_k: int = Field(default=10, ge=1)
    n_resamples: int = Field(default=1000, ge=1)
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    task_config: TaskConfig | None = Field(default=None, description="an RL run's task (the study passes it): the "
                                           "prompts, golds and reward are that run's own")


def forecast_config(**values: Any) -> ForecastConfig:
    """A validated ForecastConfig; a bad value is a one-line UserError naming the field."""
    try:
        return ForecastConfig(**values)
    except ValidationError as exc:
        raise UserError(one_line(exc, "forecast")) from None


class CertifyConfig(StrictConfig):
    """Everything a certify run takes (`rlvr-safety certify` flags, the study's certify stage): the one home of
    its defaults and range checks."""

    policy: str = Field(description="the fine-tuned model spec")
    reference: str = Field(description="the reference model spec (before fine-tuning)")
    suite: str = Field(default="safety5", description="safety probe suite or benchmark(s)")
    limit: int | None = Field(default=50, ge=0, description="probe prompts per benchmark")
    judge: JudgeName = DEFAULT_JUDGE
    judge_options: dict[str, Any] = Field(default_factory=dict, description="build_judge options (judge_endpoint, "
                                          "judge_model)")
    measure: bool = Field(default=False, description="also judge the policy: measured drift vs each bound")
    data_dir: Path | None = None
    k: int = Field(default=1, ge=1, description="samples per probe prompt")
    seed: int = Field(default=0, ge=0)
    max_new_tokens: int = Field(default=64, ge=1)
    batch_size: int = Field(default=16, ge=1)
    logprob_batch_size: int = Field(default=8, ge=1)
    n_resamples: int = Field(default=1000, ge=1)
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)


def certify_config(**values: Any) -> CertifyConfig:
    """A validated CertifyConfig; a bad value is a one-line UserError naming the field."""
    try:
        return CertifyConfig(**values)
    except ValidationError as exc:
        raise UserError(one_line(exc, "certify")) from None
