"""The typed configs of the evaluation commands (`rlvr-safety eval`, `rlvr-safety forecast`, `rlvr-safety
certify`): the one home of their defaults and range checks, read by the CLI (flags and their shown defaults), the
study's stages and the runners (runner.py, forecast.py, certify.py), which validate through them before any model
loads. Light to import: the CLI reads the defaults at startup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, NonNegativeInt, ValidationError, ValidationInfo, field_validator

from ..config import StrictConfig, one_line
from ..data.tasks import TaskConfig
from ..errors import UserError
from ..generation.base import BACKENDS, GenerationParams
from ..judges.registry import DEFAULT_JUDGE, JudgeName

__all__ = ["CertifyConfig", "EvalConfig", "ForecastConfig", "certify_config", "eval_config", "forecast_config"]


class EvalConfig(StrictConfig):
    """Everything an eval run takes (`rlvr-safety eval` flags, the study's eval stage): the one home of its
    defaults and range checks. Safety prompts are answered with `max_new_tokens` at `temperature` (`seed`);
    prompts a grader scores (capability benchmarks) greedily with `capability_max_new_tokens`."""

    model: str = Field(description="'default', a hub id, a folder or a .gguf file (backend openai: the server's "
                       "model name)")
    benchmarks: list[str] = Field(description="benchmarks and suites (e.g. safety5, capability)")
    limit: int | None = Field(default=None, ge=0, description="at most this many items per benchmark; None: all")
    limits: dict[str, NonNegativeInt] = Field(default_factory=dict, description="per-benchmark limits (else "
                                              "limit); a limit on xstest counts its safe and unsafe prompts together")
    data_dir: Path | None = Field(default=None, description="local data folder; None: the Hugging Face hub")
    judge: JudgeName = Field(default=DEFAULT_JUDGE, description="the safety judge (docs/judges.md)")
    judge_options: dict[str, Any] = Field(default_factory=dict, description="build_judge options (judge_endpoint, "
                                          "judge_model)")
    second_judges: list[str] = Field(
        default_factory=list, description="judges run again on the same responses, their agreement with `judge` "
        "stored per benchmark ('auto' = keyword, or learned when judge is keyword; evaluation/judge_check.py)")
    backend: str = Field(default="hf", description="generation backend: hf (in-process), vllm (extra), openai (any "
                         "OpenAI-compatible server; key from OPENAI_API_KEY)")
    base_url: str | None = Field(default=None, description="server URL for backend openai (else OPENAI_BASE_URL)")
    generator_options: dict[str, Any] = Field(default_factory=dict, description="other backend options (hf: "
                                              "device, dtype)")
    max_new_tokens: int = Field(default=128, ge=1, description="tokens per safety response")
    capability_max_new_tokens: int = Field(default=384, ge=1, description="tokens per capability response")
    batch_size: int = Field(default=16, ge=1, description="generation batch size")
    max_padding: float | None = Field(
        default=2.0, ge=1.0, description="hf backend: a batch closes before its padded prompt positions exceed this "
        "multiple of its real prompt tokens, so a few long jailbreak prompts do not pad a whole batch; None: "
        "batch_size alone (benchmarks/generation_batching.py)")
    temperature: float = Field(default=0.0, ge=0.0, description="safety prompts: 0 = greedy; 1 = sampled answers "
                               "(capability prompts are always greedy)")
    seed: int = Field(default=0, ge=0, description="sampling seed of the safety answers")
    record_tokens: bool = Field(default=False, description="keep every sampled token id (hf backend), so a "
                                "certificate can score exactly these samples (evaluation/certify.py)")

    @field_validator("benchmarks")
    @classmethod
    def _something_to_evaluate(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("nothing to evaluate: name at least one benchmark or suite")
        return value

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in BACKENDS:
            raise ValueError(f"unknown generation backend {value!r}; choose one of {', '.join(BACKENDS)}")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url_is_for_openai(cls, value: str | None, info: ValidationInfo) -> str | None:
        backend = info.data.get("backend")
        if value and backend is not None and backend != "openai":
            raise ValueError(f"base_url is for backend openai, not {backend}: a vLLM server (`vllm serve`) speaks "
                             "the OpenAI API, so use backend openai with its URL (http://HOST:PORT/v1); backend "
                             "vllm runs vLLM in this process")
        return value

    def safety_params(self) -> GenerationParams:
        """Sampling of the safety prompts (judged)."""
        return GenerationParams(max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
                                max_padding=self.max_padding, temperature=self.temperature, top_p=1.0,
                                seed=self.seed)

    def capability_params(self) -> GenerationParams:
        """Greedy answers to the prompts a grader scores."""
        return GenerationParams(max_new_tokens=self.capability_max_new_tokens, batch_size=self.batch_size,
                                max_padding=self.max_padding)

    def generator_kwargs(self) -> dict[str, Any]:
        """What get_generator(backend, model, ...) takes."""
        return {**self.generator_options, **({"base_url": self.base_url} if self.base_url else {})}


def eval_config(**values: Any) -> EvalConfig:
    """A validated EvalConfig; a bad value is a one-line UserError naming the field."""
    try:
        return EvalConfig(**values)
    except ValidationError as exc:
        raise UserError(one_line(exc, "eval")) from None


class ForecastConfig(StrictConfig):
    """Everything a forecast run takes (`rlvr-safety forecast` flags, the study's forecast stage): the one home of
    its defaults and range checks."""

    model: str = Field(description="the reference model spec")
    task: str = Field(description="benchmarks / suites, comma-separated (with task_config: its name)")
    beta: float = Field(gt=0.0, description="KL coefficient of the planned run (the optimum tilts by exp(g/beta))")
    k: int = Field(default=8, ge=2, description="samples per prompt; at least 2 (a per-prompt covariance needs "
                   "two: with one, every prompt's forecast drift is 0 by construction)")
    limit: int | None = Field(default=32, ge=1, description="prompts per benchmark (arithmetic: generated); None: "
                              "all")
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
    limit: int | None = Field(default=50, ge=1, description="probe prompts per benchmark (0 would leave the "
                              "certificate no probe); None: all")
    judge: JudgeName = DEFAULT_JUDGE
    judge_options: dict[str, Any] = Field(default_factory=dict, description="build_judge options (judge_endpoint, "
                                          "judge_model)")
    measure: bool = Field(default=False, description="also judge the policy: measured drift vs each bound")
    data_dir: Path | None = None
    k: int = Field(default=1, ge=1, description="samples per probe prompt")
    seed: int = Field(default=0, ge=0)
    max_new_tokens: int = Field(default=64, ge=1)
    batch_size: int = Field(default=16, ge=1)
    logprob_batch_size: int = Field(default=8, ge=1, description="rows per log-prob forward pass (rows are sorted "
                                    "by length; 8 pads the demo's probes 26% over their length, 16 by 58%)")
    n_resamples: int = Field(default=1000, ge=1)
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)


def certify_config(**values: Any) -> CertifyConfig:
    """A validated CertifyConfig; a bad value is a one-line UserError naming the field."""
    try:
        return CertifyConfig(**values)
    except ValidationError as exc:
        raise UserError(one_line(exc, "certify")) from None
