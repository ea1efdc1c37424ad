"""SFT baseline: TRL SFTTrainer on the task's reference solutions, loss on the completion tokens only.

Same prompts as RLVR (same seed, same instruction), so the two differ only in the learning signal: imitation of
reference solutions (GSM8K rationales; generated worked solutions for arithmetic) versus a verifier's reward.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rlvr_safety.errors import UserError

from . import common
from .config import SFTConfig
from .distributed import pin_single_process_device, save_trained_model


def sft_dataset(cfg: SFTConfig) -> Any:
    """Conversational prompt-completion pairs; TRL masks the prompt so only the solution is learnt."""
    from datasets import Dataset

    items = common.task_items(cfg.task, seed=cfg.seed, data_dir=cfg.data_dir)
    rows = [{"prompt": common.messages(it.prompt, cfg.task.system_prompt),
             "completion": [{"role": "assistant", "content": it.solution}]}
            for it in items if it.solution]
    if not rows:
        raise UserError(f"task {cfg.task.name!r} has no reference solutions for SFT; use arithmetic or gsm8k-train")
    return Dataset.from_list(rows)


def sft_args(cfg: Any, out: Path, max_length: int) -> dict[str, Any]:
    kw = common.trainer_kwargs(cfg, out)
    kw.update(max_length=max_length, completion_only_loss=True, packing=False, dataset_num_proc=None)
    return kw


def run_sft_trainer(cfg: Any, out: Path, resume: bool, kind: str, dataset: Any, loaded: Any,
                    monitors: list[Any], extra: dict[str, Any] | None = None,
                    final_check: Any = None) -> dict[str, Any]:
    """Shared by sft and guard: build SFTTrainer, stream metrics, run monitors, save DIR/model atomically."""
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    from .callbacks import ReferenceHandle

    store = common.open_store(out)
    store.start_run(kind, kind, cfg.model_dump())
    t0 = time.time()
    try:
        args = TRLSFTConfig(**sft_args(cfg, out, cfg.max_length),
                            num_train_epochs=getattr(cfg, "num_train_epochs", 1.0))
        pin_single_process_device(args, str(loaded.device))
        trainer = SFTTrainer(model=loaded.model, args=args, train_dataset=dataset,
                             processing_class=loaded.tokenizer, peft_config=common.peft_config(cfg.lora))

        def load_ref() -> Any:  # only a monitor that asks for pi_ref pays for a second copy
            return common.load_policy(cfg).model.eval().requires_grad_(False)

        policy = trainer.accelerator.unwrap_model(trainer.model)
        ref = ReferenceHandle(policy, None if hasattr(policy, "disable_adapter") else load_ref)
        cb = common.make_run_callback(store, kind, loaded.tokenizer, monitors, ref)
        cb.attach(trainer)
        result = common.train(trainer, out, resume)
        if final_check is not None:
            extra = {**(extra or {}), **final_check(trainer.model, loaded.tokenizer)}
        save_trained_model(trainer, loaded.tokenizer, out / common.MODEL_SUBDIR,
                           adapter_base=common.adapter_base_spec(cfg))
    except BaseException:
        store.finish_run(kind, "failed")
        raise
    store.finish_run(kind, "done")
    return common.summary(cb, result, out, {"recipe": kind, "wall_s": round(time.time() - t0, 1), **(extra or {})})


def run(cfg: SFTConfig, out: Path, resume: bool = False) -> dict[str, Any]:
    dataset = sft_dataset(cfg)
    probe = common.probe_monitor(cfg)
    loaded = common.load_policy(cfg)
    return run_sft_trainer(cfg, out, resume, "sft", dataset, loaded, [probe], {"examples": len(dataset)})
