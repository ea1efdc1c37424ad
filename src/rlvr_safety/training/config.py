"""Typed, validated training configs: YAML in, one clear line out on any mistake, before a model is loaded.

Field names mirror TRL (beta, num_generations, epsilon, scale_rewards, loss_type, ...) so users move across freely.
Unknown keys are rejected (extra="forbid"): a typo such as `bata: 0.1` must never silently train with the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError, model_validator

from rlvr_safety.config import StrictConfig, apply_overrides, one_line, read_yaml_mapping
from rlvr_safety.data.tasks import TaskConfig
from rlvr_safety.errors import UserError
from rlvr_safety.judges.registry import DEFAULT_JUDGE, JudgeName

RECIPES = ("guard", "sft", "rlhf", "rlvr")
Algorithm = Literal["grpo", "dr_grpo", "dapo", "bnpo", "rloo", "reinforce_pp", "ppo"]
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)  # the one list (the study's methods and the recipes read it)
KLMode = Literal["reward", "loss"]
KL_MODES: tuple[KLMode, ...] = ("reward", "loss")
# loss types whose normaliser weighs every completion alike whatever its length (a constant, or the batch's token
# count): with the KL in the reward, only these keep the exponential tilt as the stationary point
LENGTH_INDEPENDENT_LOSSES = ("dr_grpo", "dapo")


_Strict = StrictConfig


class LoraConfig(_Strict):
    """LoRA adapter (PEFT's field names); with it the reference policy is the same weights with the adapter switched
    off (no copy)."""

    retired_keys = {"alpha": "renamed lora_alpha (PEFT's name); write lora.lora_alpha",
                    "dropout": "renamed lora_dropout (PEFT's name); write lora.lora_dropout"}

    enabled: bool = True
    r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"


class ProbeConfig(_Strict):
    """Judged safety probe: the first `n` prompts of each benchmark, greedy, judged every `every` steps."""

    enabled: bool = True
    every: int = Field(default=10, ge=1)
    benchmarks: list[str] = Field(default_factory=lambda: ["harmbench", "strongreject", "xstest"])
    n: int = Field(default=4, ge=1, description="prompts per benchmark (harmful ones only)")
    judge: JudgeName | None = Field(default=None, description="None: the recipe's judge")
    max_new_tokens: int = Field(default=32, ge=1)


class CertificateMonitorConfig(_Strict):
    """Live safety certificate (RL recipes): every `every` steps, certified floor S >= S_ref - bound from log-probs
    on the first `n` harmful prompts of each benchmark; with `safety_budget` training stops (checkpoint saved) once
    the conservative floor falls below S_ref - safety_budget. S_ref is judged once, on reference samples."""

    enabled: bool = False
    every: int = Field(default=10, ge=1)
    benchmarks: list[str] = Field(default_factory=lambda: ["harmbench", "strongreject", "xstest"])
    n: int = Field(default=4, ge=1)
    judge: JudgeName | None = Field(default=None, description="None: the recipe's judge")
    k: int = Field(default=2, ge=1, description="policy samples per probe prompt")
    max_new_tokens: int = Field(default=32, ge=1)
    safety_budget: float | None = Field(default=None, gt=0.0, le=1.0)


class CommonConfig(_Strict):
    """Settings every recipe shares (model, optimisation, checkpointing, logging, safety monitoring)."""

    model: str = "default"
    seed: int = 0
    data_dir: str | None = None
    judge: JudgeName = Field(default=DEFAULT_JUDGE, description="safety judge of the probes, the certificate monitor "
                             "and the guard's stopping rule, unless a section names its own")
    lora: LoraConfig = Field(default_factory=lambda: LoraConfig())
    gradient_checkpointing: bool = False
    device: str | None = Field(default=None, description="cpu | cuda | cuda:N; None picks cuda when available")
    dtype: str | None = Field(default=None, description="bf16 | fp16 | fp32; None = bf16 on GPU, fp32 on CPU")
    learning_rate: float = Field(default=1e-5, gt=0.0)
    max_steps: int = Field(default=20, ge=1)
    per_device_train_batch_size: int = Field(default=8, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    warmup_steps: int = Field(default=0, ge=0)
    lr_scheduler_type: str = "constant"
    max_grad_norm: float = Field(default=1.0, gt=0.0)
    save_steps: int = Field(default=50, ge=1)
    save_total_limit: int | None = Field(default=2, ge=1)
    report_to: list[str] | str = "none"
    probe: ProbeConfig = Field(default_factory=lambda: ProbeConfig())
    save_adapter: bool = Field(
        default=False, description="with LoRA, DIR/model holds the adapter only (float32, naming `model` as its "
        "base) instead of merged weights: a few MB, and exact when the base is bf16 (merging rounds small updates)")

    @property
    def probe_judge(self) -> str:
        return self.probe.judge or self.judge


class VerlConfig(_Strict):
    """`backend: verl` (training/verl.py): the run is exported to verl's parquet schema and launched as
    `python3 -m verl.trainer.main_ppo` on Ray with our reward (rewards/verl_adapter.py) and KL settings."""

    n_gpus_per_node: int = Field(default=1, ge=1)
    nnodes: int = Field(default=1, ge=1)
    max_prompt_length: int = Field(default=1024, ge=8, description="verl's data.max_prompt_length (tokens); "
                                   "longer prompts are filtered out")
    val_size: int = Field(default=16, ge=1, description="rows of the val file (verl requires one; validation "
                          "is off: test_freq -1)")
    critic_learning_rate: float = Field(default=1e-5, gt=0.0, description="ppo (gae): the value model's lr")
    tensor_model_parallel_size: int = Field(default=1, ge=1, description="vLLM rollout TP size")


class RLConfig(CommonConfig):
    """RL settings shared by rlvr and rlhf (TRL GRPOConfig names)."""

    retired_keys = {"max_prompt_length": "removed: it was never used (prompts are not truncated); delete it"}

    task: TaskConfig = Field(default_factory=lambda: TaskConfig())
    algorithm: Algorithm = "grpo"
    beta: float = Field(default=0.05, ge=0.0, description="KL coefficient; 0 drops the penalty but KL is still logged")
    kl_mode: KLMode = Field(
        default="reward",
        description="reward: each sequence's reward becomes r - beta * sum_t log(pi/pi_ref), no std scaling, a "
                    "length-independent loss normaliser, no KL term in the loss: the optimum is the exponential "
                    "tilt pi_ref e^(g/beta)/Z the theory, forecast and optimum bound describe. loss: TRL's per-token "
                    "k3 penalty in the loss (with the algorithm's own scaling), a different objective")
    num_generations: int = Field(default=4, ge=2)
    max_completion_length: int = Field(default=32, ge=1)
    temperature: float = Field(default=1.0, gt=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    epsilon: float = Field(default=0.2, gt=0.0)
    epsilon_high: float | None = Field(default=None, gt=0.0, description="None: the algorithm's default")
    num_iterations: int = Field(default=1, ge=1)
    scale_rewards: Literal["group", "batch", "none"] | None = Field(default=None, description="None: the algorithm's")
    loss_type: str | None = Field(default=None, description="override the algorithm's TRL loss type (expert use)")
    mask_truncated_completions: bool = False
    success_threshold: float = Field(default=1.0, description="a completion succeeds when its verifier reward >= this")
    record_rollouts: bool = Field(default=False, description="save rollouts + per-sequence KL to DIR/rollouts.pt")
    certificate: CertificateMonitorConfig = Field(default_factory=lambda: CertificateMonitorConfig())
    # generation through vLLM (TRL's GRPOConfig names; needs the vllm extra and CUDA, checked before loading)
    use_vllm: bool = Field(default=False, description="sample rollouts with vLLM instead of transformers' generate")
    vllm_mode: Literal["colocate", "server"] = Field(
        default="colocate", description="colocate: an engine inside each training process, sharing its GPU; "
                                        "server: a separate `trl vllm-serve` process at vllm_server_host:port")
    vllm_gpu_memory_utilization: float = Field(default=0.3, gt=0.0, le=1.0,
                                               description="colocate: the GPU memory fraction vLLM may take")
    vllm_server_host: str = Field(default="0.0.0.0", min_length=1, description="server mode: the server's host")
    vllm_server_port: int = Field(default=8000, ge=1, le=65535, description="server mode: the server's port")
    backend: Literal["trl", "verl"] = Field(default="trl", description="trl: in-process TRL GRPOTrainer (accelerate "
                                            "for several GPUs); verl: export + verl.trainer.main_ppo on Ray (the "
                                            "only backend with ppo)")
    verl: VerlConfig = Field(default_factory=lambda: VerlConfig())

    @property
    def certificate_judge(self) -> str:
        return self.certificate.judge or self.judge

    @model_validator(mode="after")
    def _check(self) -> RLConfig:
        if self.per_device_train_batch_size * self.gradient_accumulation_steps % self.num_generations:
            raise ValueError(
                f"per_device_train_batch_size x gradient_accumulation_steps "
                f"({self.per_device_train_batch_size} x {self.gradient_accumulation_steps}) must be a multiple of "
                f"num_generations ({self.num_generations})")
        if self.kl_mode == "reward":
            if self.scale_rewards == "group":
                raise ValueError("scale_rewards 'group' divides each prompt's rewards by their std, which moves the "
                                 "optimum off the exponential tilt that kl_mode 'reward' targets; use 'none' or "
                                 "'batch', or kl_mode: loss for TRL's objective")
            if self.loss_type is not None and self.loss_type not in LENGTH_INDEPENDENT_LOSSES:
                raise ValueError(f"loss_type {self.loss_type!r} weighs a completion by its length, which moves the "
                                 f"optimum off the tilt that kl_mode 'reward' targets; use one of "
                                 f"{', '.join(LENGTH_INDEPENDENT_LOSSES)}, or kl_mode: loss")
        if self.use_vllm and self.device is not None and not self.device.startswith("cuda"):
            raise ValueError(f"use_vllm needs a CUDA device, not device {self.device!r}; set use_vllm: false")
        if self.backend == "verl" and (self.certificate.enabled or self.record_rollouts):
            raise ValueError("backend verl runs outside this process: the live certificate and record_rollouts "
                             "are TRL-backend features; disable them (certify the exported model afterwards)")
        return self


class RLVRConfig(RLConfig):
    pass


class RewardModelConfig(_Strict):
    """The learned reward of the rlhf recipe: TRL RewardTrainer on preference pairs."""

    data: str = Field(default="hh-rlhf-helpful", description="preference benchmark (records with extra chosen/rejected)")
    limit: int | None = Field(default=512, ge=2)
    model: str | None = Field(default=None, description="RM base spec; None = the policy's model")
    max_steps: int = Field(default=50, ge=1)
    learning_rate: float = Field(default=5e-5, gt=0.0)
    per_device_train_batch_size: int = Field(default=8, ge=1)
    max_length: int = Field(default=256, ge=16)
    lora: LoraConfig = Field(default_factory=lambda: LoraConfig(enabled=False))
    path: str | None = Field(default=None, description="use an already trained RM folder and skip RM training")


class RLHFConfig(RLConfig):
    reward_model: RewardModelConfig = Field(default_factory=lambda: RewardModelConfig())


class SFTConfig(CommonConfig):
    """Supervised fine-tuning on the task's reference solutions, loss on the completion only."""

    task: TaskConfig = Field(default_factory=lambda: TaskConfig())
    max_length: int = Field(default=512, ge=16)
    num_train_epochs: float = Field(default=1.0, gt=0.0)


class GuardConfig(CommonConfig):
    """Safety SFT: refusals on harmful prompts, the model's own greedy answers on benign ones, until a target."""

    learning_rate: float = Field(default=1e-4, gt=0.0)
    max_steps: int = Field(default=200, ge=1)
    harmful: str = Field(default="advbench", description="training-only harmful source; keep it out of evaluation")
    n_harmful: int = Field(default=200, ge=1)
    heldout: int = Field(default=32, ge=1, description="held-out harmful prompts for the stopping rule")
    benign: list[str] = Field(default_factory=lambda: ["arithmetic", "gsm8k-train"])
    n_benign: int = Field(default=100, ge=1, description="benign prompts per source")
    benign_max_new_tokens: int = Field(default=64, ge=1)
    target_refusal: float = Field(default=0.9, gt=0.0, le=1.0)
    check_every: int = Field(default=10, ge=1)
    check_max_new_tokens: int = Field(default=24, ge=1)
    max_length: int = Field(default=256, ge=16)

    @model_validator(mode="after")
    def _check(self) -> GuardConfig:
        if not self.benign:
            raise ValueError("benign must name at least one source (benign answers keep the model helpful)")
        return self


CONFIG_CLASSES: dict[str, type[CommonConfig]] = {
    "guard": GuardConfig, "sft": SFTConfig, "rlhf": RLHFConfig, "rlvr": RLVRConfig}


def recipe_of(cfg: CommonConfig) -> str:
    """The recipe a validated config belongs to."""
    for name, cls in CONFIG_CLASSES.items():
        if type(cfg) is cls:
            return name
    raise TypeError(f"not a recipe config: {type(cfg).__name__}")


def validate_config(recipe: str, data: dict[str, Any]) -> CommonConfig:
    """A recipe config from a mapping; raises pydantic's ValidationError (callers word it for their source)."""
    if recipe not in CONFIG_CLASSES:
        raise UserError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    cfg = CONFIG_CLASSES[recipe].model_validate(data)
    if isinstance(cfg, RLConfig) and cfg.algorithm == "ppo" and cfg.backend != "verl":
        check_ppo_available()
    return cfg


def load_config(recipe: str, path: str | Path | None, overrides: list[str] | None = None) -> CommonConfig:
    """Read YAML (or nothing), apply overrides, validate; every problem is a one-line UserError."""
    if recipe not in CONFIG_CLASSES:
        raise UserError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    data: dict[str, Any] = {}
    if path is not None:
        data = read_yaml_mapping(path, "config file")
        named = data.pop("recipe", recipe)
        if named != recipe:
            raise UserError(f"{path} is a config for recipe {named!r}, not {recipe!r}")
    apply_overrides(data, list(overrides or []))
    try:
        return validate_config(recipe, data)
    except ValidationError as exc:
        raise UserError(one_line(exc, f"{recipe} config", "check the spelling (see docs/training.md)")) from exc


def check_ppo_available() -> None:
    """PPO needs a value head; the pinned TRL has no PPO trainer, so say so instead of faking it with GRPO."""
    import importlib.util
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # probing for the module is not using it
    if importlib.util.find_spec("trl") is not None and importlib.util.find_spec("trl.experimental.ppo") is not None:
        raise UserError("algorithm 'ppo': trl.experimental.ppo exists in this TRL but is not wired up yet; "
                        "use grpo, dr_grpo, dapo, bnpo, rloo or reinforce_pp")
    raise UserError("algorithm 'ppo' is unavailable: the installed TRL has no PPO trainer (trl.experimental.ppo "
                    "was removed); set backend: verl (verl's PPO with a critic, gae), or use grpo, dr_grpo, dapo, "
                    "bnpo, rloo or reinforce_pp (see docs/training.md)")


VLLM_EXTRA_HINT = "pip install 'rlvr-safety[vllm]'"


def check_vllm_available(cfg: RLConfig) -> None:
    """use_vllm: the vllm package and a CUDA device must be there; one line saying which is missing, before any
    model loads. (The config's own validator already rejects use_vllm with a non-CUDA `device`.)"""
    if not cfg.use_vllm:
        return
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise UserError(f"use_vllm: the vllm package is not installed ({VLLM_EXTRA_HINT}); or set use_vllm: false")
    import torch

    if not torch.cuda.is_available():
        raise UserError("use_vllm: vLLM needs a CUDA GPU and none is visible; set use_vllm: false")
