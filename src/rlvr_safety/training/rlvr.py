"""RLVR: TRL's GRPOTrainer with a verifiable reward, explicit KL control and sequence-level KL logged every step.

`algorithm` maps onto GRPOTrainer settings (docs/training.md has the exact table):
  grpo          loss_type="grpo",   scale_rewards="group"   (group-mean baseline, group-std scaling)
  dr_grpo       loss_type="dr_grpo", scale_rewards="none"   (no std scaling, constant length normaliser)
  dapo          loss_type="dapo",   scale_rewards="group", epsilon_high=0.28 (clip-higher, token-level loss)
  bnpo          loss_type="bnpo",   scale_rewards="group"
  rloo          loss_type="grpo",   scale_rewards="none", advantages x G/(G-1): r_i - mean_{j!=i} r_j exactly
  reinforce_pp  loss_type="dapo",   scale_rewards="batch"   (REINFORCE++-baseline: group-mean baseline,
                                                             global batch std normalisation)
  ppo           unavailable in the pinned TRL (no value-head trainer): a UserError at config time.
The KL penalty (beta > 0) is TRL's: per-token k3 in the loss against a frozen copy, or the LoRA adapter switched off.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch
from trl import GRPOConfig, GRPOTrainer
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model, use_adapter

from rlvr_safety.errors import UserError

from . import common
from .callbacks import ReferenceHandle
from .config import RLConfig
from .kl import ESTIMATORS, sequence_estimators

ALGORITHM_ARGS: dict[str, dict[str, Any]] = {
    "grpo": {"loss_type": "grpo", "scale_rewards": "group"},
    "dr_grpo": {"loss_type": "dr_grpo", "scale_rewards": "none"},
    "dapo": {"loss_type": "dapo", "scale_rewards": "group", "epsilon_high": 0.28},
    "bnpo": {"loss_type": "bnpo", "scale_rewards": "group"},
    "rloo": {"loss_type": "grpo", "scale_rewards": "none"},
    "reinforce_pp": {"loss_type": "dapo", "scale_rewards": "batch"},
}


class TrackedReward:
    """Wraps a reward so the trainer can read the last batch's raw values (success rate, not just the mean)."""

    def __init__(self, fn: Any, name: str | None = None) -> None:
        self.fn = fn
        self.__name__ = name or getattr(fn, "__name__", getattr(fn, "name", "reward"))
        self.last: list[float] = []

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        values = self.fn(prompts, completions, **kwargs)
        self.last = [float("nan") if v is None else float(v) for v in values]
        return values


class MonitoredGRPOTrainer(GRPOTrainer):
    """GRPOTrainer + sequence-level KL (k1/k2/k3) and success rate on every step's rollouts, even at beta = 0.

    Policy log-probs come from the loss pass itself (on-policy, no extra forward: with num_iterations = 1 they equal
    the sampling policy's), or from TRL's `old_per_token_logps` when it keeps them. Reference log-probs come from
    TRL when beta > 0; at beta = 0 this class computes them (frozen copy, or LoRA adapter off).
    """

    def __init__(self, *args: Any, success_reward: TrackedReward | None = None, success_threshold: float = 1.0,
                 loo_advantages: bool = False, record_rollouts: bool = False, kl_ref_model: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.success_reward = success_reward
        self.success_threshold = success_threshold
        self.loo_advantages = loo_advantages
        self.record_rollouts = record_rollouts
        self.rollout_records: list[dict[str, Any]] = []
        self._captured_logps: torch.Tensor | None = None
        self.kl_ref_model = None
        if self.beta == 0.0 and kl_ref_model is not None:
            targs: Any = self.args
            disable_dropout_in_model(kl_ref_model)
            add_fused_lm_head(kl_ref_model, temperature=self.temperature,
                              cast_lm_head_to_fp32=targs.cast_lm_head_to_fp32)
            self.kl_ref_model = self.accelerator.prepare_model(kl_ref_model, evaluation_mode=True)

    # -- reference access for monitors ---------------------------------------------------------------------------
    def reference_handle(self) -> ReferenceHandle:
        return ReferenceHandle(self.accelerator.unwrap_model(self.model), self.ref_model or self.kl_ref_model)

    def _reference_logps(self, out: dict[str, Any]) -> torch.Tensor:
        ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
        mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
        keep = out["completion_ids"].size(1)
        bs = self.args.per_device_train_batch_size
        policy: Any = self.model
        targs: Any = self.args
        with torch.no_grad(), disable_gradient_checkpointing(policy, targs.gradient_checkpointing_kwargs):
            if self.ref_model is not None or self.kl_ref_model is not None:
                ref = self.ref_model if self.ref_model is not None else self.kl_ref_model
                logps, _, _ = self._get_per_token_logps_and_entropies(ref, ids, mask, keep, batch_size=bs)
            else:
                model = self.accelerator.unwrap_model(self.model)
                with use_adapter(model, adapter_name="ref" if "ref" in model.peft_config else None):
                    logps, _, _ = self._get_per_token_logps_and_entropies(self.model, ids, mask, keep, batch_size=bs)
        return logps

    # -- hooks -----------------------------------------------------------------------------------------------------
    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        out = super()._generate_and_score_completions(inputs)
        policy: Any = self.model
        mode = "train" if policy.training else "eval"
        if out.get("ref_per_token_logps") is None:
            out["ref_per_token_logps"] = self._reference_logps(out)
        g = int(self.num_generations or 1)
        if self.loo_advantages and g > 1:
            out["advantages"] = out["advantages"] * (g / (g - 1))
        if self.success_reward is not None and self.success_reward.last:
            vals = torch.tensor(self.success_reward.last, dtype=torch.float32)
            vals = vals[~torch.isnan(vals)]
            if vals.numel():
                self._metrics[mode]["success_rate"].append((vals >= self.success_threshold).float().mean().item())
        return out

    def _get_per_token_logps_and_entropies(self, model: Any, *args: Any, **kwargs: Any) -> Any:
        result = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        if kwargs.get("compute_entropy"):
            self._captured_logps = result[0].detach()
        return result

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        self._captured_logps = None
        loss = super()._compute_loss(model, inputs)
        logps = inputs.get("old_per_token_logps")
        if logps is None:
            logps = self._captured_logps
        ref = inputs.get("ref_per_token_logps")
        if logps is not None and ref is not None:
            mask = inputs["completion_mask"]
            if "tool_mask" in inputs:
                mask = mask * inputs["tool_mask"]
            seq = sequence_estimators(logps, ref, mask)
            policy: Any = self.model
            mode = "train" if policy.training else "eval"
            for k in ESTIMATORS:
                self._metrics[mode][f"kl_seq/{k}"].append(self.accelerator.gather(seq[k]).mean().item())
            if self.record_rollouts and mode == "train":
                self.rollout_records.append({
                    "step": self.state.global_step,
                    "prompt_ids": inputs["prompt_ids"].cpu(), "prompt_mask": inputs["prompt_mask"].cpu(),
                    "completion_ids": inputs["completion_ids"].cpu(), "completion_mask": mask.cpu(),
                    **{k: seq[k].cpu() for k in ESTIMATORS}})
        return loss


def grpo_args(cfg: RLConfig, out: Path) -> dict[str, Any]:
    """GRPOConfig keyword arguments for `cfg` (used by the recipe and by the bare-TRL benchmark alike)."""
    if cfg.algorithm not in ALGORITHM_ARGS:
        from .config import check_ppo_available

        check_ppo_available()
    algo = dict(ALGORITHM_ARGS[cfg.algorithm])
    if cfg.scale_rewards is not None:
        algo["scale_rewards"] = cfg.scale_rewards
    if cfg.loss_type is not None:
        algo["loss_type"] = cfg.loss_type
    if cfg.epsilon_high is not None:
        algo["epsilon_high"] = cfg.epsilon_high
    kw = common.trainer_kwargs(cfg, out)
    kw.update(algo)
    kw.update(
        beta=cfg.beta, num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature, top_p=cfg.top_p, epsilon=cfg.epsilon, num_iterations=cfg.num_iterations,
        mask_truncated_completions=cfg.mask_truncated_completions, disable_dropout=True, log_completions=False,
        use_vllm=False,
    )
    return kw


def prompt_dataset(cfg: RLConfig) -> Any:
    """Conversational prompts (TRL applies the chat template) + the columns the verifier reads."""
    from datasets import Dataset

    items = common.task_items(cfg.task, seed=cfg.seed, data_dir=cfg.data_dir)
    return Dataset.from_list([
        {"prompt": common.messages(it.prompt, cfg.task.system_prompt), "gold": it.gold, "id": it.id}
        for it in items])


def build_trainer(cfg: RLConfig, out: Path, reward_funcs: list[Any] | None = None,
                  reward_weights: list[float] | None = None, loaded: Any = None,
                  callbacks: list[Any] | None = None) -> MonitoredGRPOTrainer:
    """A ready MonitoredGRPOTrainer; `reward_funcs` replaces the verifier (rlhf), which then only scores success."""
    verifier = TrackedReward(common.task_reward(cfg.task))
    funcs: list[Any] = [verifier]
    weights: list[float] = [1.0]
    if reward_funcs:
        funcs = [*reward_funcs, verifier]
        weights = [*(reward_weights or [1.0] * len(reward_funcs)), 0.0]
    loaded = loaded or common.load_policy(cfg)
    args = GRPOConfig(**grpo_args(cfg, out), reward_weights=weights)
    peft = common.peft_config(cfg.lora)
    kl_ref = None
    if cfg.beta == 0.0 and peft is None:  # TRL builds no reference at beta = 0; keep a frozen copy for logging
        kl_ref = copy.deepcopy(loaded.model).eval().requires_grad_(False)
    return MonitoredGRPOTrainer(
        model=loaded.model, reward_funcs=funcs, args=args, train_dataset=prompt_dataset(cfg),
        processing_class=loaded.tokenizer, peft_config=peft, callbacks=callbacks,
        success_reward=verifier, success_threshold=cfg.success_threshold,
        loo_advantages=cfg.algorithm == "rloo", record_rollouts=cfg.record_rollouts, kl_ref_model=kl_ref)


def certificate_monitor(cfg: RLConfig) -> Any:
    """The live certificate monitor when configured (built before the trainer so config errors come first)."""
    c = cfg.certificate
    if not c.enabled:
        return None
    from .certificate_callback import build_certificate_monitor

    return build_certificate_monitor(benchmarks=c.benchmarks, n=c.n, judge=c.judge, every=c.every, k=c.k,
                                     max_new_tokens=c.max_new_tokens, safety_budget=c.safety_budget,
                                     data_dir=cfg.data_dir, seed=cfg.seed)


def run(cfg: RLConfig, out: Path, resume: bool = False, kind: str = "rlvr",
        reward_funcs: list[Any] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train with RL and save DIR/model atomically; metrics go to DIR/store.sqlite and report_to."""
    if cfg.algorithm == "ppo":
        raise UserError("algorithm 'ppo' is unavailable with the installed TRL; see docs/training.md")
    store = common.open_store(out)
    store.start_run(kind, kind, cfg.model_dump())
    probe = common.probe_monitor(cfg)
    cert = certificate_monitor(cfg)
    t0 = time.time()
    try:
        trainer = build_trainer(cfg, out, reward_funcs=reward_funcs)
        cb = common.make_run_callback(store, kind, trainer.processing_class, [probe, cert], trainer.reference_handle())
        cb.attach(trainer)
        result = common.train(trainer, out, resume)
        common.save_model_atomic(trainer.model, trainer.processing_class, out / common.MODEL_SUBDIR)
        if cfg.record_rollouts:
            torch.save(trainer.rollout_records, out / "rollouts.pt")
    except BaseException:
        store.finish_run(kind, "failed")
        raise
    store.finish_run(kind, "done")
    info = common.summary(cb, result, out, {"recipe": kind, "algorithm": cfg.algorithm,
                                            "wall_s": round(time.time() - t0, 1), **(extra or {})})
    return info
