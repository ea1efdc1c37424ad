"""Safety monitoring during training: one small interface, run by one TrainerCallback for every recipe.

A monitor sees the live policy, its tokenizer and a `ReferenceHandle` (frozen reference model, or the same weights
with the LoRA adapter switched off), returns metrics and may ask training to stop. The built-ins are a judged safety
probe (fixed prompts from the safety suite) and the guard stage's refusal-rate stopping rule; a certificate monitor
(KL on a held-out probe set from reference log-probs) plugs in the same way.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from transformers import TrainerCallback

from rlvr_safety.generation.base import GenerationParams, Prompt
from rlvr_safety.generation.hf import HFGenerator

from .kl import completion_token_logprobs

log = logging.getLogger(__name__)


@dataclass
class MonitorResult:
    """What a monitor reports: metrics (logged under `<monitor name>/<key>`) and whether training should stop."""

    metrics: dict[str, float] = field(default_factory=dict)
    stop: bool = False


class ReferenceHandle:
    """Access to pi_ref without caring how it is held: a separate frozen model, or the policy's adapter disabled.

    `ref_model` may also be a zero-argument callable that loads the model on first use, so recipes without a
    reference (SFT, guard) pay nothing unless a monitor asks for it.
    """

    def __init__(self, policy: Any, ref_model: Any = None) -> None:
        self.policy = policy
        self._ref = ref_model

    @property
    def uses_adapter(self) -> bool:
        return self._ref is None and hasattr(self.policy, "disable_adapter")

    @contextlib.contextmanager
    def model(self) -> Iterator[Any]:
        """Yield a model that computes pi_ref; with LoRA the adapter is off only inside the block."""
        if self._ref is None:
            if not hasattr(self.policy, "disable_adapter"):
                raise RuntimeError("no reference model: full fine-tuning needs ref_model (or a loader)")
            with self.policy.disable_adapter():
                yield self.policy
            return
        if callable(self._ref) and not isinstance(self._ref, torch.nn.Module):
            self._ref = self._ref()
        yield self._ref

    def token_logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int,
                       temperature: float = 1.0) -> torch.Tensor:
        """log pi_ref of the last `logits_to_keep` tokens of each row (same layout as GRPOTrainer's rollouts)."""
        with self.model() as ref:
            return completion_token_logprobs(ref, input_ids, attention_mask, logits_to_keep, temperature)


@runtime_checkable
class SafetyMonitor(Protocol):
    """Called every `every` optimizer steps with the live policy; must not leave the model in eval mode."""

    name: str
    every: int

    def __call__(self, step: int, model: Any, tokenizer: Any, ref: ReferenceHandle | None) -> MonitorResult: ...


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """Generate in eval mode (no dropout, KV cache on), restore training mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train()


def greedy_responses(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int,
                     batch_size: int = 16) -> list[str]:
    """Greedy replies through the project's generator (chat template, left padding, EOS handling)."""
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0, batch_size=batch_size)
    with eval_mode(model), _cache_on(model):
        batch: list[Prompt] = list(prompts)
        outs = HFGenerator(model, tokenizer).generate(batch, params, progress=False)
    return [o.text for o in outs]


@contextlib.contextmanager
def _cache_on(model: Any) -> Iterator[None]:
    """Gradient checkpointing turns use_cache off; generation without a KV cache is needlessly slow."""
    cfg = getattr(model, "config", None)
    old = getattr(cfg, "use_cache", None)
    if cfg is not None:
        cfg.use_cache = True
    try:
        yield
    finally:
        if cfg is not None and old is not None:
            cfg.use_cache = old


class JudgedProbe:
    """Refusal / harmfulness of greedy replies to a fixed prompt set, by a named judge (cheap: keyword)."""

    def __init__(self, prompts: list[str], judge: Any, every: int, max_new_tokens: int = 32,
                 name: str = "probe", stop_at_refusal: float | None = None) -> None:
        if not prompts:
            raise ValueError("a probe needs at least one prompt")
        self.prompts = prompts
        self.judge = judge
        self.every = every
        self.max_new_tokens = max_new_tokens
        self.name = name
        self.stop_at_refusal = stop_at_refusal

    def __call__(self, step: int, model: Any, tokenizer: Any, ref: ReferenceHandle | None) -> MonitorResult:
        responses = greedy_responses(model, tokenizer, self.prompts, self.max_new_tokens)
        verdicts = [v for v in self.judge.judge(self.prompts, responses) if v.ok]
        if not verdicts:
            return MonitorResult({"n": 0.0})
        refusal = sum(v.refused for v in verdicts) / len(verdicts)
        harmful = sum(v.harmful for v in verdicts) / len(verdicts)
        stop = self.stop_at_refusal is not None and refusal >= self.stop_at_refusal
        return MonitorResult({"refusal_rate": refusal, "harmful": harmful, "n": float(len(verdicts))}, stop=stop)


def numeric(logs: dict[str, Any]) -> dict[str, float]:
    """Finite float metrics only (the store and most loggers reject strings and NaN)."""
    out = {}
    for k, v in logs.items():
        if isinstance(v, bool):
            v = float(v)
        if isinstance(v, int | float) and math.isfinite(float(v)):
            out[k] = float(v)
    return out


class RunCallback(TrainerCallback):
    """Streams every logged metric into the run's store and runs safety monitors on schedule.

    Insert it first in the trainer's callback list (`attach`): monitor metrics are merged into the `logs` dict that
    the report_to loggers (wandb, tensorboard, ...) receive after it.
    """

    def __init__(self, store: Any, run_id: str, tokenizer: Any, monitors: list[SafetyMonitor] | None = None,
                 ref: ReferenceHandle | None = None, monitors_on_every_rank: bool | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.tokenizer = tokenizer
        self.monitors = list(monitors or [])
        self.ref = ref
        # Several processes: monitors run on rank 0 only, and their stop decision is broadcast. Under a sharding
        # engine (ZeRO-3, FSDP) a forward needs every rank, so every rank runs them (same prompts, same seeds) and
        # rank 0's result counts. None: decided from the launch environment.
        if monitors_on_every_rank is None:
            from .distributed import sharding_engine

            monitors_on_every_rank = sharding_engine() is not None
        self.monitors_on_every_rank = monitors_on_every_rank
        self.pending: dict[str, float] = {}
        self.stopped_by: str | None = None
        self.history: list[dict[str, float]] = []
        self.trainer: Any = None

    def attach(self, trainer: Any) -> None:
        trainer.callback_handler.callbacks.insert(0, self)
        self.trainer = trainer
        if self.ref is None:
            self.ref = ReferenceHandle(trainer.model, getattr(trainer, "ref_model", None))

    def live_policy(self, model: Any) -> contextlib.AbstractContextManager[Any]:
        """The policy the monitors generate with. Under DeepSpeed ZeRO-3 every forward gathers each layer's shards,
        so a monitor's generate would gather the whole model once per token: TRL's unwrap_model_for_generation
        gathers it once for the block (every rank enters it; `ds3_gather_for_generation` as in the trainer's
        args, default on). Elsewhere the model as the trainer hands it to callbacks."""
        from .distributed import sharding_engine

        trainer = self.trainer
        if trainer is None or sharding_engine() != "deepspeed3":
            return contextlib.nullcontext(model)
        from trl.models import unwrap_model_for_generation

        targs = trainer.args
        return unwrap_model_for_generation(
            trainer.model_wrapped, trainer.accelerator,
            gather_deepspeed3_params=getattr(targs, "ds3_gather_for_generation", True),
            gradient_checkpointing_kwargs=getattr(targs, "gradient_checkpointing_kwargs", None))

    def run_monitors(self, step: int, model: Any) -> bool:
        """Run the monitors due at `step` on the live policy, without inference mode (generation/grad.py)."""
        from rlvr_safety.generation.grad import training_time

        stop = False
        for mon in self.monitors:
            if step % mon.every:
                continue
            with training_time():
                result = mon(step, model, self.tokenizer, self.ref)
            self.pending.update({f"{mon.name}/{k}": float(v) for k, v in result.metrics.items()})
            if result.stop and not stop:
                stop, self.stopped_by = True, mon.name
        return stop

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> Any:
        from rlvr_safety.progress import report

        from .distributed import broadcast_from_main

        # a bare training loop's state may not know its length; TRL's TrainerState always does
        report(f"{self.run_id} steps", state.global_step, int(getattr(state, "max_steps", 0) or 0))
        due = model is not None and any(state.global_step % m.every == 0 for m in self.monitors)
        if not due:
            return control
        stop = False
        if getattr(state, "is_world_process_zero", True) or self.monitors_on_every_rank:
            with self.live_policy(model) as live:
                stop = self.run_monitors(state.global_step, live)
        # every rank must stop (and save, a collective) at the same step: rank 0 decides
        stop, self.stopped_by = broadcast_from_main((stop, self.stopped_by))
        if stop:
            log.info("monitor %s asked to stop at step %d", self.stopped_by, state.global_step)
            control.should_training_stop = True
            control.should_save = True
        control.should_log = True  # on every rank alike: logging gathers the loss across ranks
        return control

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> Any:
        if logs is None:
            return control
        logs.update(self.pending)
        self.pending = {}
        metrics = numeric(logs)
        if metrics:
            self.history.append({"step": float(state.global_step), **metrics})
            if getattr(state, "is_world_process_zero", True):  # one writer
                self.store.log_metrics(self.run_id, state.global_step, metrics)
        return control
