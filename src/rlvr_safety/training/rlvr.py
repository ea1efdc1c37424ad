"""RLVR: TRL's GRPOTrainer with a verifiable reward, explicit KL control and sequence-level KL logged every step.

`kl_mode` says which objective is optimised (docs/training.md has the exact tables):
  reward (default)  the theory's: each sequence's reward is r - beta * sum_t log(pi/pi_ref) over its completion
                    tokens (k1 of the sampled sequence, under the sampling policy), no per-group std scaling, a
                    length-independent loss normaliser, no KL term in the loss. The expected update is (a positive
                    multiple of) the gradient of E_pi[g] - beta KL(pi || pi_ref), whose stationary point is the
                    exponential tilt pi_ref e^(g/beta) / Z that the forecast and optimum_bound describe.
  loss              TRL's: per-token k3 penalty beta * (e^{-l_t} - 1 + l_t) added to the loss, with the algorithm's own
                    scaling and length normaliser. Its on-policy gradient is not that of the sequence-level KL, so the
                    theory's optimum does not describe it.
`algorithm` fixes the baseline, the advantage scaling and the TRL loss type (per kl_mode):
                 baseline  scale (loss / reward)  loss_type (loss / reward)
  grpo           mean      group / none           grpo / dr_grpo
  dr_grpo        mean      none / none            dr_grpo / dr_grpo
  dapo           mean      group / none           dapo / dapo          (+ epsilon_high = 0.28)
  bnpo           mean      group / none           bnpo / dapo
  rloo           loo       none / none            grpo / dr_grpo       (factor n/(n-1), n = scored per group)
  reinforce_pp   mean      centred / centred      dapo / dapo          (REINFORCE++-baseline)
  ppo            unavailable in the pinned TRL (no value-head trainer): a UserError at config time.
Advantages are computed here (training/advantages.py) from the rewards TRL collected, replacing TRL's own.
The reference is always the model training started from: a frozen copy (full fine-tuning), or the same weights with
the LoRA adapter switched off; TRL never rebuilds it from the model's config (which names the pre-adapter base model
when training starts from a LoRA adapter folder).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import is_peft_model
from trl import GRPOConfig, GRPOTrainer
from trl.models import prepare_deepspeed, prepare_fsdp
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model, use_adapter

from rlvr_safety.errors import UserError
from rlvr_safety.generation.decode import decode
from rlvr_safety.generation.hf import float32_weights, left_pad

from . import common
from .advantages import ALGORITHMS, Baseline, Scale, advantage_settings, group_advantages, kl_penalised
from .callbacks import ReferenceHandle
from .config import KLMode, RLConfig, check_vllm_available
from .distributed import is_main, pin_single_process_device, rank, save_trained_model
from .kl import ESTIMATORS, sequence_estimators

ALGORITHM_ARGS = ALGORITHMS  # the algorithm names the recipe accepts (kept for callers of the old name)
# TRL's scale_rewards for our scale: "centred" is not a TRL mode (TRL's "batch" divides by the std of the raw
# rewards), so TRL is told "none" and the recipe divides by the centred std itself
TRL_SCALE: dict[Scale, str] = {"none": "none", "group": "group", "batch": "batch", "centred": "none"}


def objective(kl_mode: KLMode) -> str:
    """A short name for the objective a run optimises (the study and report use it to pair forecasts)."""
    return "tilt" if kl_mode == "reward" else "trl_k3_loss"


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
    """GRPOTrainer + the kl_mode objective, our advantages, an explicit reference, and sequence-level KL (k1/k2/k3)
    and success rate on every step's rollouts, at any beta.

    Pass `args` with beta = 0 (so TRL builds no reference of its own); `kl_beta` is the real coefficient. With
    kl_mode "loss" it becomes TRL's k3-in-loss coefficient after construction; with "reward" it enters the reward.
    `reference` is the frozen starting model for full fine-tuning; None with LoRA (adapter switched off).
    Policy log-probs for the logged KL come from the loss pass (no extra forward), or TRL's `old_per_token_logps`.
    Rollouts without vLLM are sampled by generation/decode.py when the law TRL asks for is its own (temperature and
    top_p; see `own_decode`): rows that stop leave the batch, tokens are drawn from the CDF instead of
    torch.multinomial's per-entry exponentials, and in float32 without autocast the sampling log-probs the KL in the
    reward needs are kept as they are drawn. Elsewhere (bf16, vLLM, tools, other sampling options) one extra no-grad
    policy forward per generation batch gives them: in bf16 the cached decoding forward and the full forward round
    differently, by about the size of the KL being penalised.
    """

    def __init__(self, *args: Any, kl_mode: KLMode, kl_beta: float, reference: Any = None,
                 baseline: Baseline = "mean", scale: Scale = "none", success_reward: TrackedReward | None = None,
                 success_threshold: float = 1.0, record_rollouts: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        targs: Any = self.args
        if targs.beta != 0.0:
            raise ValueError("MonitoredGRPOTrainer: pass GRPOConfig(beta=0) and the coefficient as kl_beta, so that "
                             "TRL does not rebuild the reference from the model's config")
        if targs.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError("MonitoredGRPOTrainer supports multi_objective_aggregation='sum_then_normalize' only")
        self.kl_mode: KLMode = kl_mode
        self.kl_beta = float(kl_beta)
        self.baseline: Baseline = baseline
        self.scale: Scale = scale
        self.success_reward = success_reward
        self.success_threshold = success_threshold
        self.record_rollouts = record_rollouts
        self.rollout_records: list[dict[str, Any]] = []
        # the last generation batch before TRL shuffles it: this process's ids and masks; every process's rewards,
        # KL (reward mode) and advantages
        self.last_batch: dict[str, torch.Tensor] = {}
        self._captured_logps: torch.Tensor | None = None
        self._sampling_logps: torch.Tensor | None = None
        self.sampling_logps_from: str | None = None  # "generation" or "forward": how the last batch's were had
        self._rewards_per_func: torch.Tensor | None = None
        # TRL's own KL term (per-token k3 in the loss) is on only in loss mode
        self.beta = self.kl_beta if kl_mode == "loss" else 0.0
        targs.beta = self.beta
        if reference is not None:
            disable_dropout_in_model(reference)
            add_fused_lm_head(reference, temperature=self.temperature,
                              cast_lm_head_to_fp32=targs.cast_lm_head_to_fp32)
            # as TRL places its own reference: sharded like the policy under ZeRO-3 / FSDP (a ZeRO-1/2 run gets a
            # stage-0 inference engine), else moved to this rank's device and never wrapped in DDP
            if self.is_deepspeed_enabled:
                reference = prepare_deepspeed(reference, self.accelerator)
            elif self.is_fsdp_enabled:
                reference = prepare_fsdp(reference, self.accelerator)
            else:
                reference = self.accelerator.prepare_model(reference, evaluation_mode=True)
            self.ref_model = reference
        elif not is_peft_model(self.accelerator.unwrap_model(self.model)):
            raise ValueError("full fine-tuning needs an explicit frozen reference (the model training starts from)")
        self.own_decode = self._law_is_temperature_and_top_p()
        self.record_sampling_logps = kl_mode == "reward" and self.own_decode and self._float32_without_autocast()

    def _law_is_temperature_and_top_p(self) -> bool:
        """Whether decode.py can sample the rollouts: TRL's law is temperature + top_p alone (top_k 0, no min_p,
        no repetition penalty, no generation_kwargs), one turn of text (no tools, no images), the policy's weights
        all on this process (no vLLM, ZeRO-3 or FSDP gathering) and a KV cache (no gradient checkpointing)."""
        targs: Any = self.args
        return (not self.use_vllm and not self.use_transformers_continuous_batching and not self.tools
                and not self._is_vlm and not self.is_deepspeed_enabled and not self.is_fsdp_enabled
                and not targs.gradient_checkpointing and targs.top_k in (0, None) and targs.min_p is None
                and targs.repetition_penalty == 1.0 and not targs.generation_kwargs
                and targs.max_completion_length is not None)

    def _float32_without_autocast(self) -> bool:
        """Where log-probs kept while sampling equal the trainer's forward pass."""
        targs: Any = self.args
        return float32_weights(self.accelerator.unwrap_model(self.model)) and not (targs.bf16 or targs.fp16)

    # -- reference access for monitors ---------------------------------------------------------------------------
    def reference_handle(self) -> ReferenceHandle:
        return ReferenceHandle(self.accelerator.unwrap_model(self.model), self.ref_model)

    def _logps(self, out: dict[str, Any], reference: bool) -> torch.Tensor:
        """Per-token log-probs of the batch's completions under pi_ref (or the current policy), no gradient."""
        ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
        mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
        keep = out["completion_ids"].size(1)
        bs = self.args.per_device_train_batch_size
        policy: Any = self.model
        targs: Any = self.args
        with torch.no_grad(), disable_gradient_checkpointing(policy, targs.gradient_checkpointing_kwargs):
            if not reference:
                logps, _, _ = self._get_per_token_logps_and_entropies(self.model, ids, mask, keep, batch_size=bs)
            elif self.ref_model is not None:
                logps, _, _ = self._get_per_token_logps_and_entropies(self.ref_model, ids, mask, keep, batch_size=bs)
            else:
                model = self.accelerator.unwrap_model(self.model)
                with use_adapter(model, adapter_name="ref" if "ref" in model.peft_config else None):
                    logps, _, _ = self._get_per_token_logps_and_entropies(self.model, ids, mask, keep, batch_size=bs)
        return logps

    def _reference_logps(self, out: dict[str, Any]) -> torch.Tensor:
        return self._logps(out, reference=True)

    # -- hooks -----------------------------------------------------------------------------------------------------
    def _calculate_rewards(self, inputs: Any, prompts: Any, completions: Any, completion_ids_list: Any) -> Any:
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._rewards_per_func = rewards  # (all processes' completions, reward functions), NaN where unscored
        return rewards

    def _sequence_rewards(self) -> torch.Tensor:
        """The weighted reward of every completion of the generation batch (all processes), NaN if unscorable."""
        rpf = self._rewards_per_func
        assert rpf is not None, "rewards were not captured"
        rewards = (rpf * self.reward_weights.to(rpf.device).unsqueeze(0)).nansum(dim=1)
        return torch.where(torch.isnan(rpf).all(dim=1), torch.full_like(rewards, float("nan")), rewards)

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        out = super()._generate_and_score_completions(inputs)
        policy: Any = self.model
        mode = "train" if policy.training else "eval"
        if out.get("ref_per_token_logps") is None:
            out["ref_per_token_logps"] = self._reference_logps(out)
        mask = out["completion_mask"] if "tool_mask" not in out else out["completion_mask"] * out["tool_mask"]
        n_local = out["completion_ids"].size(0)
        start = self.accelerator.process_index * n_local
        rewards = self._sequence_rewards()
        batch: dict[str, torch.Tensor] = {"rewards": rewards.detach().cpu(), "completion_mask": mask.cpu(),
                                          **{k: out[k].cpu() for k in ("prompt_ids", "prompt_mask", "completion_ids")}}
        if self.kl_mode == "reward":
            logps = out.get("old_per_token_logps")
            self.sampling_logps_from = "forward"
            recorded, self._sampling_logps = self._sampling_logps, None
            if logps is None and recorded is not None and recorded.size(1) >= out["completion_ids"].size(1):
                logps = recorded[:, :out["completion_ids"].size(1)].to(out["completion_ids"].device)
                self.sampling_logps_from = "generation"
            if logps is None:
                logps = self._logps(out, reference=False)
            k1 = ((logps.float() - out["ref_per_token_logps"].float()) * mask).sum(-1)
            seen = mask.sum(-1) > 0  # a completion masked out entirely (truncated) has no KL and no gradient
            k1_all = self.accelerator.gather(k1)
            seen_all = self.accelerator.gather(seen.int()).bool()
            rewards = kl_penalised(rewards, k1_all.to(rewards.device), self.kl_beta, seen_all.to(rewards.device))
            batch.update(kl_k1=k1_all.detach().cpu(), seen=seen_all.detach().cpu(), shaped=rewards.detach().cpu())
            scored = ~torch.isnan(rewards)
            if scored.any():
                self._metrics[mode]["kl_penalty"].append(self.kl_beta * k1_all[scored.to(k1_all.device)].mean().item())
                self._metrics[mode]["reward_with_kl"].append(rewards[scored].mean().item())
        g: Any = self.num_generations if mode == "train" else (self.num_generations_eval or self.num_generations)
        advantages = group_advantages(rewards, int(g), self.baseline, self.scale).to(out["advantages"].device)
        batch["advantages"] = advantages.detach().cpu()
        self.last_batch = batch
        out["advantages"] = advantages[start:start + n_local].to(out["advantages"].dtype)
        if self.success_reward is not None:
            # the verifier saw this process's completions only: sum successes and counts over every process
            vals = torch.tensor(self.success_reward.last, dtype=torch.float32)
            vals = vals[~torch.isnan(vals)]
            local = torch.tensor([[float((vals >= self.success_threshold).sum()), float(vals.numel())]],
                                 device=self.accelerator.device)
            hits, count = self.accelerator.gather(local).reshape(-1, 2).sum(0).tolist()
            if count > 0:
                self._metrics[mode]["success_rate"].append(hits / count)
        return out

    def _generate_single_turn(self, prompt_ids: Any, images: Any, multimodal_fields: Any, *args: Any,
                              **kwargs: Any) -> Any:
        """The rollouts: decode.py where `own_decode` holds (keeping the sampling log-probs in float32), else
        TRL's generation; both under the trainer's autocast, so that with fp32 master weights (full fine-tuning in
        bf16) sampling runs in bf16 like the loss pass (a no-op in fp32 and on vLLM)."""
        if self.use_vllm:
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, *args, **kwargs)
        if not self.own_decode or multimodal_fields or (images is not None and any(i is not None for i in images)):
            with self.accelerator.autocast():
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, *args, **kwargs)
        model = self.accelerator.unwrap_model(self.model)
        pad = self._tokenizer.pad_token_id
        ids, mask = left_pad([list(p) for p in prompt_ids], int(pad if pad is not None else self.eos_token_ids[0]),
                             self.accelerator.device)
        with torch.no_grad(), self.accelerator.autocast():
            decoded = decode(model, ids, mask, int(self.max_completion_length or 0), self.temperature, self.top_p or 1.0,
                             self.eos_token_ids, record=self.record_sampling_logps)
        # as TRL returns them: each completion up to and including its EOS token
        completion_ids = [d.tokens + ([d.stop_token] if d.stop_token is not None else []) for d in decoded]
        if self.record_sampling_logps:
            width = max((len(c) for c in completion_ids), default=0)
            logps = torch.zeros((len(decoded), width))
            for r, d in enumerate(decoded):
                lp = d.token_logprobs or []
                logps[r, :len(lp)] = torch.tensor(lp)
            self._sampling_logps = logps
        return completion_ids, None

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
            seen = (mask.sum(-1) > 0).float()  # the loss sees no token of a masked-out (truncated) completion
            policy: Any = self.model
            mode = "train" if policy.training else "eval"
            for k in ESTIMATORS:
                tot = self.accelerator.gather(torch.stack([(seq[k] * seen).sum(), seen.sum()]).reshape(1, 2))
                total, count = tot.reshape(-1, 2).sum(0).tolist()
                if count > 0:
                    self._metrics[mode][f"kl_seq/{k}"].append(total / count)
            if self.record_rollouts and mode == "train":
                self.rollout_records.append({
                    "step": self.state.global_step,
                    "prompt_ids": inputs["prompt_ids"].cpu(), "prompt_mask": inputs["prompt_mask"].cpu(),
                    "completion_ids": inputs["completion_ids"].cpu(), "completion_mask": mask.cpu(),
                    "advantages": inputs["advantages"].detach().cpu(),
                    **{k: seq[k].cpu() for k in ESTIMATORS}})
        return loss


def grpo_args(cfg: RLConfig, out: Path) -> dict[str, Any]:
    """GRPOConfig keyword arguments for `cfg`: what TRL itself is told (the bare-TRL benchmark uses them as they are).

    With kl_mode "reward" TRL's beta is 0 (the recipe puts the KL in the reward); with "loss" it is `cfg.beta`.
    """
    if cfg.algorithm not in ALGORITHMS:
        from .config import check_ppo_available

        check_ppo_available()
    spec = ALGORITHMS[cfg.algorithm]
    reward_mode = cfg.kl_mode == "reward"
    _, scale = advantage_settings(cfg)
    algo: dict[str, Any] = {
        "loss_type": cfg.loss_type or (spec.reward_loss_type if reward_mode else spec.loss_type),
        "scale_rewards": TRL_SCALE[scale],
    }
    epsilon_high = cfg.epsilon_high if cfg.epsilon_high is not None else spec.epsilon_high
    if epsilon_high is not None:
        algo["epsilon_high"] = epsilon_high
    kw = common.trainer_kwargs(cfg, out)
    kw.update(algo)
    kw.update(
        beta=0.0 if reward_mode else cfg.beta, num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length, temperature=cfg.temperature, top_p=cfg.top_p,
        epsilon=cfg.epsilon, num_iterations=cfg.num_iterations,
        mask_truncated_completions=cfg.mask_truncated_completions, disable_dropout=True, log_completions=False,
        use_vllm=cfg.use_vllm,
    )
    if cfg.use_vllm:
        kw.update(vllm_mode=cfg.vllm_mode, vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
                  vllm_server_host=cfg.vllm_server_host, vllm_server_port=cfg.vllm_server_port)
    return kw


def prompt_dataset(cfg: RLConfig) -> Any:
    """Conversational prompts (TRL applies the chat template) + the columns the verifier reads."""
    from datasets import Dataset

    items = common.task_items(cfg.task, seed=cfg.seed, data_dir=cfg.data_dir)
    return Dataset.from_list([
        {"prompt": common.messages(it.prompt, cfg.task.system_prompt), "gold": it.gold, "id": it.id,
         common.TASK_EXAMPLE_COLUMN: it.example_json()}
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
    # TRL is told beta = 0 so that it builds no reference itself (with full fine-tuning it would load one from
    # config._name_or_path: the base model, not the adapter-merged model training starts from); the trainer sets
    # its own KL coefficient afterwards
    args = GRPOConfig(**{**grpo_args(cfg, out), "beta": 0.0}, reward_weights=weights)
    pin_single_process_device(args, str(loaded.device))
    peft = common.peft_config(cfg.lora)
    reference = None
    if peft is None:  # full fine-tuning: a frozen copy of the starting model (LoRA: the adapter switched off)
        reference = copy.deepcopy(loaded.model).eval().requires_grad_(False)
    baseline, scale = advantage_settings(cfg)
    return MonitoredGRPOTrainer(
        model=loaded.model, reward_funcs=funcs, args=args, train_dataset=prompt_dataset(cfg),
        processing_class=loaded.tokenizer, peft_config=peft, callbacks=callbacks,
        kl_mode=cfg.kl_mode, kl_beta=cfg.beta, reference=reference, baseline=baseline, scale=scale,
        success_reward=verifier, success_threshold=cfg.success_threshold, record_rollouts=cfg.record_rollouts)


def certificate_monitor(cfg: RLConfig) -> Any:
    """The live certificate monitor when configured (built before the trainer so config errors come first)."""
    c = cfg.certificate
    if not c.enabled:
        return None
    from .certificate_callback import build_certificate_monitor

    return build_certificate_monitor(benchmarks=c.benchmarks, n=c.n, judge=cfg.certificate_judge, every=c.every, k=c.k,
                                     max_new_tokens=c.max_new_tokens, safety_budget=c.safety_budget,
                                     data_dir=cfg.data_dir, seed=cfg.seed)


def run(cfg: RLConfig, out: Path, resume: bool = False, kind: str = "rlvr",
        reward_funcs: list[Any] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train with RL and save DIR/model atomically; metrics go to DIR/store.sqlite and report_to."""
    if cfg.backend == "verl":
        if reward_funcs:
            raise UserError("backend verl trains with a verifiable reward only (rewards/verl_adapter.py); "
                            "rlhf's learned reward runs on backend trl")
        from .verl import run as run_verl

        return run_verl(cfg, out, resume, kind=kind)
    if cfg.algorithm == "ppo":
        raise UserError("algorithm 'ppo' is unavailable with the installed TRL; see docs/training.md")
    check_vllm_available(cfg)
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
        save_trained_model(trainer, trainer.processing_class, out / common.MODEL_SUBDIR,
                           adapter_base=common.adapter_base_spec(cfg))
        if cfg.record_rollouts:  # each process holds its own rollouts: rank 0 rollouts.pt, rank r rollouts.rank<r>.pt
            name = "rollouts.pt" if is_main() else f"rollouts.rank{rank()}.pt"
            torch.save(trainer.rollout_records, out / name)
    except BaseException:
        store.finish_run(kind, "failed")
        raise
    store.finish_run(kind, "done")
    info = common.summary(cb, result, out, {"recipe": kind, "algorithm": cfg.algorithm, "beta": cfg.beta,
                                            "kl_mode": cfg.kl_mode, "objective": objective(cfg.kl_mode),
                                            "wall_s": round(time.time() - t0, 1), **(extra or {})})
    return info
