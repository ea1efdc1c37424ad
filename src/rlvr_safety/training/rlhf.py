"""RLHF baseline: a learned reward model (TRL RewardTrainer on preference pairs), then the same RL as rlvr.

Stage 1 trains a scalar reward model (sequence classifier, 1 label, Bradley-Terry loss) on HH-RLHF helpful-base
pairs, formatted as the dataset's own "\\n\\nHuman: ...\\n\\nAssistant: ..." transcript. Stage 2 runs the configured
RL algorithm on the *task* prompts with the reward model's score in place of the verifier; the verifier is kept with
weight 0, so success is still logged but never optimised. The only difference from rlvr is the reward.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from rlvr_safety.errors import UserError

from . import common, rlvr
from .config import RLHFConfig, check_vllm_available
from .distributed import local_rank, pin_single_process_device, save_trained_model, world_size
from .precision import precision_plan

RM_SUBDIR = "reward_model"


def preference_dataset(cfg: RLHFConfig) -> Any:
    """{chosen, rejected} full transcripts (implicit prompt: TRL scores the whole text)."""
    from datasets import Dataset

    from rlvr_safety.data import load_benchmark

    rm = cfg.reward_model
    rows = []
    for r in load_benchmark(rm.data, data_dir=cfg.data_dir, limit=rm.limit):
        chosen, rejected = r.extra.get("chosen"), r.extra.get("rejected")
        if not isinstance(chosen, str) or not isinstance(rejected, str):
            raise UserError(f"reward_model.data {rm.data!r} has no chosen/rejected pairs; use hh-rlhf-helpful")
        rows.append({"chosen": f"{r.prompt} {chosen}", "rejected": f"{r.prompt} {rejected}"})
    if len(rows) < 2:
        raise UserError(f"reward_model.data {rm.data!r} gave {len(rows)} pairs; need at least 2")
    return Dataset.from_list(rows)


def train_reward_model(cfg: RLHFConfig, out: Path, resume: bool) -> Path:
    """Train (or reuse) DIR/reward_model; returns its folder."""
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from rlvr_safety.models import load_tokenizer, pick_device_and_dtype, resolve_source, root_model

    target = out / RM_SUBDIR
    if cfg.reward_model.path:
        return Path(resolve_source(cfg.reward_model.path))
    if (target / "config.json").exists():
        return target
    rm = cfg.reward_model
    spec = rm.model or cfg.model
    # full fine-tuning keeps fp32 masters under bf16/fp16 autocast (training/precision.py); the trainer places it
    plan = precision_plan(cfg.device, cfg.dtype, full_finetune=not rm.lora.enabled)
    _, dtype = pick_device_and_dtype(plan.device, plan.load_dtype)
    tok = load_tokenizer(spec)
    # a sequence classifier is built from full weights: a LoRA adapter folder (e.g. the guarded reference) gives
    # the full model at the root of its adapter chain
    model = AutoModelForSequenceClassification.from_pretrained(resolve_source(root_model(spec)), num_labels=1,
                                                               dtype=dtype)
    model.config.pad_token_id = tok.pad_token_id
    kw = common.trainer_kwargs(cfg, out / "reward_checkpoints")
    kw.update(output_dir=str(out / "reward_checkpoints"), max_steps=rm.max_steps, learning_rate=rm.learning_rate,
              per_device_train_batch_size=rm.per_device_train_batch_size, gradient_accumulation_steps=1,
              max_length=rm.max_length)
    store = common.open_store(out)
    store.start_run("reward_model", "reward_model", rm.model_dump())
    args = RewardConfig(**kw)
    pin_single_process_device(args, plan.device)
    trainer = RewardTrainer(model=model, args=args, train_dataset=preference_dataset(cfg),
                            processing_class=tok, peft_config=common.peft_config(rm.lora, "SEQ_CLS"))
    cb = common.make_run_callback(store, "reward_model", tok, [])
    cb.attach(trainer)
    ckpt = common.last_checkpoint(out / "reward_checkpoints") if resume else None
    trainer.train(resume_from_checkpoint=ckpt)
    save_trained_model(trainer, tok, target)
    store.finish_run("reward_model", "done")
    return target


class LearnedReward:
    """TRL reward function backed by the reward model: score("Human: q / Assistant: completion")."""

    __name__ = "learned_rm"

    def __init__(self, folder: Path, device: str | None = None, max_length: int = 256, batch_size: int = 16) -> None:
        from transformers import AutoModelForSequenceClassification

        from rlvr_safety.models import load_device_map, load_tokenizer, pick_device_and_dtype

        dev, dtype = pick_device_and_dtype(device, None)
        self.tokenizer = load_tokenizer(str(folder))
        self.tokenizer.padding_side = "right"
        # each process scores its own completions on its own GPU (the CPU under ZeRO-3 / FSDP is too slow: cuda)
        dev = f"cuda:{local_rank()}" if dev.startswith("cuda") and world_size() > 1 else dev
        # whole, straight onto the GPU: a frozen scorer is not sharded (the reward model's trainer registered ZeRO-3
        # with transformers, which would partition it with zero.Init and refuse a device_map)
        from .distributed import unsharded_loading

        with unsharded_loading():
            self.model = AutoModelForSequenceClassification.from_pretrained(
                folder, dtype=dtype, device_map=load_device_map(dev)).to(dev).eval()
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.max_length = max_length
        self.batch_size = batch_size

    @staticmethod
    def transcript(prompt: Any, completion: Any) -> str:
        from rlvr_safety.rewards.base import completion_text

        question = prompt[-1]["content"] if isinstance(prompt, list) else str(prompt)
        return f"\n\nHuman: {question}\n\nAssistant: {completion_text(completion)}"

    @torch.no_grad()
    def __call__(self, prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
        texts = [self.transcript(p, c) for p, c in zip(prompts, completions, strict=True)]
        scores: list[float] = []
        device = next(self.model.parameters()).device
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[i:i + self.batch_size], return_tensors="pt", padding=True,
                                 truncation=True, max_length=self.max_length).to(device)
            scores.extend(self.model(**enc).logits[:, 0].float().tolist())
        return scores


def run(cfg: RLHFConfig, out: Path, resume: bool = False) -> dict[str, Any]:
    if cfg.algorithm == "ppo":
        raise UserError("algorithm 'ppo' is unavailable with the installed TRL; see docs/training.md")
    check_vllm_available(cfg)  # before the reward model is trained
    if cfg.backend == "verl":
        raise UserError("rlhf's learned reward runs on backend trl; backend verl takes verifiable rewards (rlvr)")
    t0 = time.time()
    folder = train_reward_model(cfg, out, resume)
    rm_s = round(time.time() - t0, 1)
    reward = LearnedReward(folder, device=cfg.device, max_length=cfg.reward_model.max_length)
    return rlvr.run(cfg, out, resume, kind="rlhf", reward_funcs=[reward],
                    extra={"reward_model": str(folder), "reward_model_wall_s": rm_s})
