"""Several processes, one run: what each rank does under `accelerate launch` / `torchrun` (docs/scaling.md).

A recipe launched as N processes (DDP, DeepSpeed ZeRO, FSDP; `accelerate launch -m rlvr_safety train ...`) runs the
same code on every rank. The rules kept here:

- every rank loads its copy of the model onto *its own* device (`cuda:LOCAL_RANK`), never all onto cuda:0; under
  ZeRO-3 / FSDP onto the CPU, whole (`unsharded_loading`), and the engine places (shards) it;
- one writer: the run store, DIR/model and the rollouts file are written by rank 0; the others wait at a barrier;
- a sharded model (ZeRO-3, FSDP) is saved through the trainer (`trainer.save_model`, which gathers the full state
  dict on every rank and writes on rank 0), then merged (LoRA) and renamed atomically by rank 0;
- a monitor's stop decision is rank 0's, broadcast to every rank so that all stop at the same step;
- one process that sees several GPUs trains on one of them (TRL refuses `nn.DataParallel`).

With no process group (one process) every function here is the trivial single-process answer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlvr_safety.atomic import replace_dir_atomic

log = logging.getLogger(__name__)


def _dist() -> Any:
    """torch.distributed when a process group is up, else None."""
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def world_size() -> int:
    dist = _dist()
    if dist is not None:
        return int(dist.get_world_size())
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    dist = _dist()
    if dist is not None:
        return int(dist.get_rank())
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Rank 0 of the whole job (the one writer)."""
    return rank() == 0


def barrier() -> None:
    dist = _dist()
    if dist is not None and dist.get_world_size() > 1:
        dist.barrier()


def broadcast_from_main(value: Any) -> Any:
    """Rank 0's `value` on every rank (a no-op in one process)."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sharding_engine() -> str | None:
    """'deepspeed3' or 'fsdp' when the launcher asked for a parameter-sharding engine, else None.

    Read from accelerate's launch environment (ACCELERATE_USE_DEEPSPEED + ACCELERATE_DEEPSPEED_ZERO_STAGE,
    ACCELERATE_USE_FSDP), which exists before any trainer does: the model is loaded before it.
    """
    def flag(name: str) -> bool:
        return os.environ.get(name, "false").strip().lower() in ("1", "true", "yes")

    if flag("ACCELERATE_USE_FSDP"):
        return "fsdp"
    if flag("ACCELERATE_USE_DEEPSPEED") and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "").strip() == "3":
        return "deepspeed3"
    return None


@contextlib.contextmanager
def unsharded_loading() -> Iterator[None]:
    """Models loaded inside the block are whole (not partitioned by DeepSpeed's zero.Init), on the device asked.

    Under a ZeRO-3 launch, every TrainingArguments (GRPOConfig, RewardConfig, ...) registers its DeepSpeed config
    with transformers, and while that object lives (the trainer and accelerate's state keep it) every
    `from_pretrained` partitions the weights with zero.Init. The recipes load the models they place themselves (the
    policy before its trainer exists, its frozen copy, rlhf's reward scorer after the reward model's trainer, a
    monitor's lazy reference) whole, as the shipped zero3.yaml says (zero3_init_flag: false): a partitioned model
    outside a DeepSpeed engine has empty parameters, and cannot be deep-copied or moved. The registration is put
    back after the block.
    """
    try:
        from transformers.integrations import deepspeed as hf_deepspeed
    except ImportError:  # pragma: no cover - transformers is a core dependency
        yield
        return
    ref = hf_deepspeed._hf_deepspeed_config_weak_ref
    registered = ref() if ref is not None else None
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if registered is not None:
            hf_deepspeed.set_hf_deepspeed_config(registered)


def load_device(device: str) -> str:
    """Where this rank should load its model: `device` as resolved (cpu | cuda | cuda:N), made rank-aware.

    Under ZeRO-3 / FSDP: the CPU (the engine shards and places it). Under a multi-process launch on CUDA:
    cuda:LOCAL_RANK, whatever index was configured (each rank owns one GPU). Otherwise `device` unchanged.
    """
    if sharding_engine() is not None:
        return "cpu"
    if device.startswith("cuda") and world_size() > 1:
        return f"cuda:{local_rank()}"
    return device


def pin_single_process_device(args: Any, device: str) -> None:
    """One process, several visible GPUs: train on one (`device`'s index, default 0) instead of letting HF's Trainer
    wrap the model in nn.DataParallel, which TRL refuses ("does not support nn.DataParallel")."""
    if world_size() > 1 or args.n_gpu <= 1:
        return
    import torch

    index = torch.device(device).index if device.startswith("cuda") else None
    index = 0 if index is None else index
    args._n_gpu = 1
    if device.startswith("cuda"):
        torch.cuda.set_device(index)
        # TrainingArguments.device is a cached property (`_setup_devices`); pin it to the chosen GPU
        args.__dict__["_setup_devices"] = torch.device("cuda", index)
    log.info("one process sees %d GPUs: training on cuda:%d only (launch with accelerate/torchrun to use all)",
             torch.cuda.device_count(), index)


class NullStore:
    """What ranks other than 0 get instead of the run store: every write is dropped (rank 0 writes)."""

    def start_run(self, *args: Any, **kwargs: Any) -> None:
        return None

    def finish_run(self, *args: Any, **kwargs: Any) -> None:
        return None

    def log_metrics(self, *args: Any, **kwargs: Any) -> None:
        return None

    def metric_series(self, *args: Any, **kwargs: Any) -> dict[str, list[tuple[int, float]]]:
        return {}

    def close(self) -> None:
        return None


def _engine_sharded(trainer: Any) -> bool:
    if getattr(trainer, "is_fsdp_enabled", False):
        return True
    if getattr(trainer, "is_deepspeed_enabled", False):
        plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
        return getattr(plugin, "zero_stage", None) == 3
    return False


def save_model_atomic(model: Any, tokenizer: Any, target: Path, adapter_base: str | None = None) -> Path:
    """Merge LoRA (if any) and write weights + tokenizer to a temp folder, then rename it to `target`.

    With `adapter_base` (a model spec) and a LoRA model, only the adapter is written (float32, a few MB), naming
    that spec as its base; models.resolve_model loads such a folder over its base. A killed run never leaves a
    half-written DIR/model; downstream stages load it like any model folder.
    """
    to_save = model
    adapter_only = adapter_base is not None and hasattr(model, "peft_config")
    if hasattr(model, "merge_and_unload") and not adapter_only:
        to_save = model.merge_and_unload()

    def fill(tmp: Path) -> None:
        if adapter_only:
            for cfg in to_save.peft_config.values():
                cfg.base_model_name_or_path = adapter_base
        to_save.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return replace_dir_atomic(target, fill)


def save_trained_model(trainer: Any, tokenizer: Any, target: Path, dtype: Any = None,
                       adapter_base: str | None = None) -> Path:
    """Write the trained model to `target` (LoRA merged) exactly once, whatever the launch; every rank calls it.

    Unsharded (one process, DDP, ZeRO-1/2): rank 0 saves the unwrapped model atomically. Sharded (ZeRO-3, FSDP):
    `trainer.save_model` gathers the full weights on every rank (ZeRO-3 needs `zero3_save_16bit_model: true`, see
    configs/accelerate/zero3.yaml) and rank 0 writes them; rank 0 then merges a LoRA adapter into its base and
    renames the folder into place. All ranks leave together (barrier).
    """
    target = Path(target)
    if _engine_sharded(trainer):
        staging = target.with_name(f".{target.name}.gathered")
        if is_main():
            shutil.rmtree(staging, ignore_errors=True)
        barrier()
        trainer.save_model(str(staging))  # collective; writes on the main process only
        if is_main():
            try:
                model = _load_saved(trainer, staging, dtype)
                save_model_atomic(model, tokenizer, target, adapter_base)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    elif is_main():
        save_model_atomic(trainer.accelerator.unwrap_model(trainer.model), tokenizer, target, adapter_base)
    barrier()
    return target


def _load_saved(trainer: Any, folder: Path, dtype: Any) -> Any:
    """The model a sharded save wrote, on the CPU: a full model, or base + LoRA adapter (merged by the caller).

    Loaded whole (`unsharded_loading`): the trainer's ZeRO-3 registration would otherwise have zero.Init partition
    it again, and save_pretrained would write its empty shards."""
    with unsharded_loading():
        return _load_saved_whole(trainer, folder, dtype)


def _load_saved_whole(trainer: Any, folder: Path, dtype: Any) -> Any:
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    if (folder / "adapter_config.json").exists():
        import json

        from peft import PeftModel

        from rlvr_safety.models import resolve_source

        base_path = json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]
        base_cls = type(unwrapped.get_base_model())
        base = base_cls.from_pretrained(resolve_source(base_path), dtype=dtype or "auto")
        return PeftModel.from_pretrained(base, str(folder))
    return type(unwrapped).from_pretrained(str(folder), dtype=dtype or "auto")
