"""Multi-process training on CPU stand-ins (torchrun + gloo) and the precision rules.

The 2-process runs go through the real recipe path (`rlvr.run`: store, callbacks, checkpoints, final save) with a
worker (tests/dist_rlvr_worker.py) whose reward depends on the prompt only, so one process with the same global
batch must log the same reward and success rate step by step, and a rank-local number would not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from rlvr_safety.errors import UserError
from rlvr_safety.store import Store
from rlvr_safety.training import distributed
from rlvr_safety.training.callbacks import MonitorResult, RunCallback
from rlvr_safety.training.precision import precision_plan

WORKER = Path(__file__).with_name("dist_rlvr_worker.py")
RUN = ["max_completion_length=4", "task.limit=16", "probe.enabled=false", "lora.enabled=false",
       "num_generations=2", "temperature=1.0"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", **extra)
    return env


def _launch(nproc: int, model: Path, out: Path, *overrides: str, timeout: int = 240,
            **env: str) -> subprocess.CompletedProcess[str]:
    if nproc == 1:
        cmd = [sys.executable, str(WORKER)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               str(WORKER)]
    return subprocess.run([*cmd, str(model), str(out), *RUN, *overrides], env=_env(**env), capture_output=True,
                          text=True, timeout=timeout)


def _trace(out: Path, rank: int) -> list[dict[str, Any]]:
    path = out / f"trace.{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _per_step_rewards(trace: list[dict[str, Any]]) -> dict[int, list[float]]:
    """{step: reward values this rank scored during it}."""
    out: dict[int, list[float]] = {}
    step = 0
    for row in trace:
        if row["event"] == "step":
            step = row["step"]
        elif row["event"] == "reward":
            out.setdefault(step, []).extend(row["values"])
    return out


@pytest.mark.slow
def test_two_processes_one_writer_same_metrics_as_one_process(tiny_model_dir: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = _launch(1, tiny_model_dir, one, "max_steps=2", "per_device_train_batch_size=4", "save_steps=1")
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = _launch(2, tiny_model_dir, two, "max_steps=2", "per_device_train_batch_size=2", "save_steps=1")
    assert r2.returncode == 0, r2.stderr[-3000:]

    t0, t1 = _trace(two, 0), _trace(two, 1)
    assert {r["world"] for r in t0 + t1 if r["event"] == "step"} == {2}
    # one writer: rank 0 holds the store and writes DIR/model; rank 1 holds a store that drops writes
    assert [r["kind"] for r in t0 if r["event"] == "store"] == ["Store"]
    assert [r["kind"] for r in t1 if r["event"] == "store"] == ["NullStore"]
    assert [r["target"] for r in t0 if r["event"] == "save"] == [str(two / "model")]
    assert not [r for r in t1 if r["event"] == "save"]
    assert (two / "model" / "config.json").exists() and (two / "checkpoints" / "checkpoint-2").is_dir()
    assert not list(two.glob(".model.*"))  # no staging folder left behind
    # the reference of full fine-tuning is not wrapped in DDP and sits on the rank's device
    for t in (t0, t1):
        ref = next(r for r in t if r["event"] == "reference")
        assert ref["wrapped"] == "LlamaForCausalLM" and ref["device"] == ref["policy_device"] == "cpu"

    s1, s2 = Store(one / "store.sqlite"), Store(two / "store.sqlite")
    assert [r["run_id"] for r in s2.query("SELECT run_id FROM runs")] == ["rlvr"]
    m1, m2 = s1.metric_series("rlvr"), s2.metric_series("rlvr")
    assert set(m1) == set(m2)
    for key in ("reward", "success_rate", "kl_seq/k1", "entropy"):
        assert [s for s, _ in m2[key]] == [1, 2], key
    # the same global batch: the same prompts, so the same (prompt-determined) reward and success rate per step
    for key in ("reward", "success_rate", "rewards/parity/mean"):
        assert [v for _, v in m2[key]] == pytest.approx([v for _, v in m1[key]], abs=1e-6), key
    # each rank scored half of that batch; the union is what one process scored
    one_proc = _per_step_rewards(_trace(one, 0))
    ranks = [_per_step_rewards(t0), _per_step_rewards(t1)]
    for step in (1, 2):
        assert sorted(ranks[0][step] + ranks[1][step]) == sorted(one_proc[step])
    # and a rank-local success rate would have been wrong here: the halves differ
    local = [[sum(r[s]) / len(r[s]) for s in (1, 2)] for r in ranks]
    assert local[0] != local[1]
    assert [v for _, v in m2["success_rate"]] == pytest.approx([(a + b) / 2 for a, b in zip(*local, strict=True)])


@pytest.mark.slow
def test_two_processes_killed_then_resumed_continue_from_the_last_checkpoint(tiny_model_dir: Path,
                                                                               tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ("max_steps=4", "per_device_train_batch_size=2", "save_steps=2")
    crashed = _launch(2, tiny_model_dir, out, *args, CRASH_AT_STEP="3")
    assert crashed.returncode != 0
    assert (out / "checkpoints" / "checkpoint-2").is_dir() and not (out / "model").exists()
    assert [r["step"] for r in _trace(out, 1) if r["event"] == "step"] == [1, 2, 3]  # rank 1 died in step 3

    resumed = _launch(2, tiny_model_dir, out, *args, RESUME="1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for k in (0, 1):
        trace = _trace(out, k)
        second = trace[max(i for i, r in enumerate(trace) if r["event"] == "launch"):]
        assert [r["step"] for r in second if r["event"] == "step"] == [3, 4]  # from checkpoint-2, not from 1
        done = [r for r in trace if r["event"] == "done"]
        assert len(done) == 1 and done[0]["steps"] == 4
    assert (out / "model" / "config.json").exists()
    assert [s for s, _ in Store(out / "store.sqlite").metric_series("rlvr")["reward"]] == [1, 2, 3, 4]


@pytest.mark.slow
def test_cli_as_a_module_under_torchrun(tiny_model_dir: Path, tmp_path: Path) -> None:
    """`torchrun -m rlvr_safety train ...` (what `accelerate launch -m rlvr_safety` runs per process)."""
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "rlvr_safety",
           "train", "--recipe", "rlvr", "--out", str(out), "--set", f"model={tiny_model_dir}"]
    for item in (*RUN, "max_steps=1", "per_device_train_batch_size=2", "task.limit=4"):
        cmd += ["--set", item]
    result = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count('"recipe": "rlvr"') == 1  # one summary, from rank 0
    assert (out / "model" / "config.json").exists()
    assert [s for s, _ in Store(out / "store.sqlite").metric_series("rlvr")["reward"]] == [1]


def test_resume_skips_a_checkpoint_left_incomplete_by_a_kill(tmp_path: Path) -> None:
    from rlvr_safety.training.common import last_checkpoint

    assert last_checkpoint(tmp_path) is None
    for step, complete in ((2, True), (4, True), (6, False), (10, False)):
        ckpt = tmp_path / "checkpoints" / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        (ckpt / "model.safetensors").write_bytes(b"")
        if complete:
            (ckpt / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoints" / "checkpoint-4")


# ------------------------------------------------------------------------------------------- placement, one process
def test_load_device_is_rank_aware(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("WORLD_SIZE", "LOCAL_RANK", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_DEEPSPEED_ZERO_STAGE",
                "ACCELERATE_USE_FSDP"):
        monkeypatch.delenv(key, raising=False)
    assert distributed.load_device("cuda") == "cuda" and distributed.load_device("cpu") == "cpu"
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert distributed.load_device("cuda") == "cuda:3"
    assert distributed.load_device("cuda:0") == "cuda:3"  # never every rank onto one GPU
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    assert distributed.load_device("cuda") == "cuda:3"  # ZeRO-2 keeps a full replica per rank
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    assert distributed.sharding_engine() == "deepspeed3" and distributed.load_device("cuda") == "cpu"
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert distributed.sharding_engine() == "fsdp" and distributed.load_device("cuda") == "cpu"


def test_single_process_with_several_gpus_is_pinned_to_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    args = SimpleNamespace(_n_gpu=2)
    args.n_gpu = 2  # what TrainingArguments reports when one process sees two GPUs (GRPOTrainer then refuses)
    distributed.pin_single_process_device(args, "cpu")
    assert args._n_gpu == 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    launched = SimpleNamespace(_n_gpu=1, n_gpu=1)
    distributed.pin_single_process_device(launched, "cpu")
    assert launched._n_gpu == 1


def test_one_process_is_main_and_its_collectives_are_trivial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.is_main() and distributed.world_size() == 1
    distributed.barrier()
    assert distributed.broadcast_from_main((True, "probe")) == (True, "probe")


class _Recorder:
    name, every = "rec", 1

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, step: int, model: Any, tokenizer: Any, ref: Any) -> MonitorResult:
        self.calls += 1
        return MonitorResult({"x": 1.0}, stop=True)


class _Store:
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []

    def log_metrics(self, run_id: str, step: int, metrics: dict[str, float]) -> None:
        self.rows.append((step, metrics))


def test_monitors_and_store_writes_on_rank_zero_only() -> None:
    from transformers import TrainerControl

    for zero, every_rank, expect_calls in ((True, False, 1), (False, False, 0), (False, True, 1)):
        mon, store = _Recorder(), _Store()
        cb = RunCallback(store, "r", None, [mon], monitors_on_every_rank=every_rank)
        state = SimpleNamespace(global_step=1, is_world_process_zero=zero)
        control = cb.on_step_end(None, state, TrainerControl(), model=object())
        assert mon.calls == expect_calls
        # one process: rank 0's decision is the decision (a real group broadcasts it to the other ranks)
        assert control.should_training_stop == (expect_calls == 1) and control.should_log
        cb.on_log(None, state, control, logs={"loss": 0.5})
        assert len(store.rows) == (1 if zero else 0)


def test_training_time_monitors_generate_without_inference_mode(tiny_model_dir: Path) -> None:
    from rlvr_safety.generation.grad import training_time
    from rlvr_safety.models import resolve_model
    from rlvr_safety.training.callbacks import greedy_responses

    loaded = resolve_model(str(tiny_model_dir))
    seen: list[tuple[bool, bool]] = []

    def spy(module: Any, args: Any) -> None:  # every forward the sampler runs
        seen.append((torch.is_inference_mode_enabled(), torch.is_grad_enabled()))

    loaded.model.register_forward_pre_hook(spy)
    greedy_responses(loaded.model, loaded.tokenizer, ["hi"], max_new_tokens=2)
    outside = seen[:]
    seen.clear()
    with training_time():
        greedy_responses(loaded.model, loaded.tokenizer, ["hi"], max_new_tokens=2)
    assert outside and set(outside) == {(True, False)}
    assert seen and set(seen) == {(False, False)}


# ------------------------------------------------------------------------------------------------------ precision
def test_precision_plan() -> None:
    full = precision_plan("cpu", "bf16", full_finetune=True)
    assert (full.load_dtype, full.bf16, full.fp16) == ("fp32", True, False)  # fp32 masters, bf16 autocast
    lora = precision_plan("cpu", "bf16", full_finetune=False)
    assert (lora.load_dtype, lora.bf16) == ("bf16", True)  # frozen base in bf16, adapter fp32 (peft)
    assert precision_plan("cpu", None, full_finetune=True).compute_dtype == "fp32"
    fp16 = precision_plan("cuda", "fp16", full_finetune=True)
    assert (fp16.load_dtype, fp16.bf16, fp16.fp16) == ("fp32", False, True)  # trainable weights fp32: unscale works
    with pytest.raises(UserError, match="fp16 needs a CUDA device"):
        precision_plan("cpu", "fp16", full_finetune=True)


BF16_STUCK = 2.0 ** -7  # bf16 keeps 8 significant bits: spacing 2^-14 on [2^-7, 2^-6)


def _length_reward(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
    from rlvr_safety.rewards.base import completion_text

    return [float(len(completion_text(c)) % 5) for c in completions]


def _moved_fraction(trainer: Any, before: dict[str, torch.Tensor], at_least: float = 0.0) -> float:
    """The fraction of weights with |w| >= at_least that changed."""
    moved = total = 0
    for name, p in trainer.model.named_parameters():
        old = before[name].float()
        big = old.abs() >= at_least
        moved += int(((p.detach().float() != old) & big).sum())
        total += int(big.sum())
    return moved / total


def test_full_finetuning_bf16_autocast_moves_weights_pure_bf16_does_not(tiny_model_dir: Path, tmp_path: Path,
                                                                        data_dir: Path) -> None:
    from rlvr_safety.models import resolve_model
    from rlvr_safety.training.config import load_config
    from rlvr_safety.training.rlvr import build_trainer

    common = [f"model={tiny_model_dir}", "max_steps=1", "per_device_train_batch_size=8", "num_generations=4",
              "max_completion_length=6", "task.limit=8", "probe.enabled=false", "lora.enabled=false",
              "learning_rate=1e-5", "device=cpu", f"data_dir={data_dir}"]
    # the recipe: dtype bf16 -> fp32 weights, bf16 autocast
    cfg = load_config("rlvr", None, [*common, "dtype=bf16"])
    trainer = build_trainer(cfg, tmp_path / "mixed", reward_funcs=[_length_reward])
    assert trainer.args.bf16 and all(p.dtype == torch.float32 for p in trainer.model.parameters())
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.state.log_history[0]["grad_norm"] > 0
    assert _moved_fraction(trainer, before) > 0.9
    assert _moved_fraction(trainer, before, at_least=BF16_STUCK) > 0.9

    # what it replaced: the weights themselves in bf16 (no master copy); an update of ~1e-5 rounds away
    pure_cfg = load_config("rlvr", None, [*common, "dtype=fp32"])
    pure = resolve_model(str(tiny_model_dir), device="cpu", dtype="bf16")
    pure.tokenizer.padding_side = "left"
    pure.model.train().requires_grad_(True)
    trainer = build_trainer(pure_cfg, tmp_path / "pure", reward_funcs=[_length_reward], loaded=pure)
    assert all(p.dtype == torch.bfloat16 for p in trainer.model.parameters())
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.state.log_history[0]["grad_norm"] > 0  # there was a gradient ...
    # ... but Adam's first step is lr * sign(g) = 1e-5, under half of bf16's spacing (6.1e-5) at |w| >= 2^-7:
    # none of those weights changed (only tiny ones did)
    assert _moved_fraction(trainer, before, at_least=BF16_STUCK) == 0.0


# ------------------------------------------------------------------------------------------ sharded save (faked)
def test_sharded_save_goes_through_the_trainer_and_merges_lora(tiny_model_dir: Path, tmp_path: Path) -> None:
    """ZeRO-3 / FSDP: the model is saved by trainer.save_model (which gathers the shards); rank 0 merges the LoRA
    adapter into its base and renames the folder into place. The engine is faked; the files and merge are real."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from rlvr_safety.models import load_tokenizer

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                 init_lora_weights=False))
    calls: list[str] = []

    def save_model(folder: str) -> None:
        calls.append(folder)
        peft_model.save_pretrained(folder)

    trainer = SimpleNamespace(
        is_fsdp_enabled=False, is_deepspeed_enabled=True, model=peft_model, save_model=save_model,
        accelerator=SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=3)),
                                    unwrap_model=lambda m: m))
    target = tmp_path / "model"
    distributed.save_trained_model(trainer, load_tokenizer(str(tiny_model_dir)), target, dtype=torch.float32)
    assert len(calls) == 1 and not Path(calls[0]).exists()  # the gathered staging folder is gone
    assert (target / "config.json").exists() and not (target / "adapter_config.json").exists()
    ids = torch.tensor([[1, 2, 3, 4]])
    merged = AutoModelForCausalLM.from_pretrained(target).eval()
    with torch.no_grad():
        expected = peft_model.eval()(input_ids=ids).logits
        assert torch.allclose(merged(input_ids=ids).logits, expected, atol=1e-5)
