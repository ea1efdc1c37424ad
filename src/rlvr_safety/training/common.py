"""What every recipe shares: model loading, TRL arguments, the store, monitors, atomic saves, resume.

Task data (prompts, golds, the task's reward) lives in task_data.py; its names are re-exported here for callers
of the old location."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from rlvr_safety.errors import UserError

from .callbacks import JudgedProbe, ReferenceHandle, RunCallback, SafetyMonitor
from .config import CommonConfig, LoraConfig
from .task_data import (  # noqa: F401 (re-exported)
    TASK_EXAMPLE_COLUMN,
    TaskItem,
    gsm8k_rationale,
    messages,
    task_items,
    task_reward,
)

log = logging.getLogger(__name__)

MODEL_SUBDIR = "model"
CHECKPOINT_SUBDIR = "checkpoints"
STORE_NAME = "store.sqlite"


# ---------------------------------------------------------------------------------------------- models
def load_policy(cfg: CommonConfig) -> Any:
    """Policy model + tokenizer + source folder (TRL rebuilds the frozen reference from `source`)."""
    from rlvr_safety.models import resolve_model

    from .distributed import load_device, unsharded_loading
    from .precision import precision_plan

    # on this rank's device (never every rank onto cuda:0; the CPU under ZeRO-3/FSDP), fp32 masters for full FT;
    # whole even when an earlier trainer of this process registered ZeRO-3 with transformers (rlhf, a lazy ref)
    plan = precision_plan(cfg.device, cfg.dtype, full_finetune=not cfg.lora.enabled)
    with unsharded_loading():
        loaded = resolve_model(cfg.model, device=load_device(plan.device), dtype=plan.load_dtype)
    tok = loaded.tokenizer
    tok.padding_side = "left"
    loaded.model.train()
    # a LoRA adapter folder is merged on load, and peft leaves the merged weights frozen: full fine-tuning from it
    # would train nothing (with LoRA, peft freezes the base again when it adds the new adapter)
    loaded.model.requires_grad_(True)
    if cfg.gradient_checkpointing:
        loaded.model.config.use_cache = False
    return loaded


def peft_config(lora: LoraConfig, task_type: str = "CAUSAL_LM") -> Any:
    """A peft LoraConfig, or None for full fine-tuning."""
    if not lora.enabled:
        return None
    from peft import LoraConfig as PeftLora

    return PeftLora(r=lora.r, lora_alpha=lora.lora_alpha, lora_dropout=lora.lora_dropout,
                    target_modules=lora.target_modules, task_type=task_type)


def on_gpu(cfg: CommonConfig) -> bool:
    from rlvr_safety.models import pick_device_and_dtype

    dev, _ = pick_device_and_dtype(cfg.device, cfg.dtype)
    return dev.startswith("cuda")


def trainer_kwargs(cfg: CommonConfig, out: Path) -> dict[str, Any]:
    """HF TrainingArguments every recipe uses: log every step, checkpoints under DIR/checkpoints, CPU-safe."""
    from .precision import precision_plan

    plan = precision_plan(cfg.device, cfg.dtype, full_finetune=not cfg.lora.enabled)
    gpu = plan.device.startswith("cuda")
    return {
        "output_dir": str(out / CHECKPOINT_SUBDIR),
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "learning_rate": cfg.learning_rate,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.per_device_train_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "warmup_steps": cfg.warmup_steps,
        "lr_scheduler_type": cfg.lr_scheduler_type,
        "max_grad_norm": cfg.max_grad_norm,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "report_to": cfg.report_to,
        "bf16": plan.bf16,  # autocast; full fine-tuning keeps fp32 master weights (training/precision.py)
        "fp16": plan.fp16,
        "use_cpu": not gpu,
        "dataloader_num_workers": 0,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "disable_tqdm": True,
    }


# ---------------------------------------------------------------------------------------------- run plumbing
def open_store(out: Path) -> Any:
    """The run store on rank 0 (the one writer of a multi-process run); a store that drops writes elsewhere."""
    from rlvr_safety.store import Store

    from .distributed import NullStore, is_main

    out.mkdir(parents=True, exist_ok=True)
    return Store(out / STORE_NAME) if is_main() else NullStore()


def probe_monitor(cfg: CommonConfig) -> SafetyMonitor | None:
    """The built-in judged probe: the first `n` harmful prompts of each configured safety benchmark."""
    if not cfg.probe.enabled:
        return None
    from rlvr_safety.data import load_benchmark
    from rlvr_safety.judges.registry import build_judge

    prompts: list[str] = []
    for name in cfg.probe.benchmarks:
        harmful = [r.prompt for r in load_benchmark(name, data_dir=cfg.data_dir) if r.label == "harmful"]
        prompts.extend(harmful[: cfg.probe.n])
    if not prompts:
        raise UserError(f"probe: no harmful prompts in {cfg.probe.benchmarks}; name safety benchmarks")
    return JudgedProbe(prompts, build_judge(cfg.probe_judge), every=cfg.probe.every,
                       max_new_tokens=cfg.probe.max_new_tokens, name="probe")


def last_checkpoint(out: Path) -> str | None:
    """The newest *complete* DIR/checkpoints/checkpoint-N: HF writes a checkpoint in place and its
    trainer_state.json last (rank 0, after the weights and optimizer), so a process killed mid-save leaves a
    folder without it, which resuming from would fail on; such folders are skipped with a warning."""
    folder = out / CHECKPOINT_SUBDIR
    if not folder.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in folder.iterdir()
                    if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name))), reverse=True)
    for _, path in found:
        if (path / "trainer_state.json").is_file():
            return str(path)
        log.warning("skipping incomplete checkpoint %s (no trainer_state.json: killed while saving)", path)
    return None


def train(trainer: Any, out: Path, resume: bool) -> Any:
    """trainer.train, resuming from DIR/checkpoints when asked (a missing checkpoint starts fresh, with a note)."""
    ckpt = last_checkpoint(out) if resume else None
    if resume and ckpt is None:
        log.warning("--resume: no checkpoint under %s; starting from step 0", out / CHECKPOINT_SUBDIR)
    return trainer.train(resume_from_checkpoint=ckpt)


def adapter_base_spec(cfg: CommonConfig) -> str | None:
    """The base an adapter-only save names (`save_adapter`): `default` and hub ids as given, folders absolute."""
    if not (cfg.save_adapter and cfg.lora.enabled):
        return None
    from rlvr_safety.models import DEFAULT_SPEC, resolve_source

    return cfg.model if cfg.model == DEFAULT_SPEC else resolve_source(cfg.model)


def make_run_callback(store: Any, run_id: str, tokenizer: Any, monitors: list[SafetyMonitor | None],
                      ref: ReferenceHandle | None = None) -> RunCallback:
    return RunCallback(store, run_id, tokenizer, [m for m in monitors if m is not None], ref)


def summary(callback: RunCallback, result: Any, out: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The dict run_recipe returns: where things are, last metrics, why it stopped."""
    last: dict[str, float] = {}  # the latest value of every metric (monitors log only every N steps)
    for h in callback.history:
        if "train_runtime" not in h:
            last.update(h)
    return {
        "out": str(out),
        "model": str(out / MODEL_SUBDIR),
        "store": str(out / STORE_NAME),
        "steps": int(getattr(result, "global_step", 0)),
        "stopped_by": callback.stopped_by,
        "last_metrics": last,
        "train_runtime_s": float(getattr(result, "metrics", {}).get("train_runtime", 0.0)),
        **(extra or {}),
    }
