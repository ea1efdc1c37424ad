"""Every recipe and every rlvr algorithm runs a few steps on a tiny random model; logged KL matches a direct
computation on the same rollouts; monitors, store streaming, atomic saves and resume work."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback

from rlvr_safety.rewards.base import completion_text
from rlvr_safety.store import Store
from rlvr_safety.training import run_recipe
from rlvr_safety.training.callbacks import MonitorResult, ReferenceHandle
from rlvr_safety.training.config import load_config
from rlvr_safety.training.kl import completion_token_logprobs, sequence_estimators
from rlvr_safety.training.rlvr import ALGORITHM_ARGS, build_trainer


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rlvr_safety.models import load_tokenizer

    tok = load_tokenizer("default")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=True)
    out = tmp_path_factory.mktemp("tiny")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(autouse=True)
def _local_data(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLVR_SAFETY_DATA_DIR", str(data_dir))


def _rl(tiny: Path, *extra: str) -> list[str]:
    return [f"model={tiny}", "max_steps=2", "per_device_train_batch_size=4", "num_generations=2",
            "max_completion_length=6", "task.limit=8", "probe.enabled=false", *extra]


@pytest.mark.parametrize("algorithm", sorted(ALGORITHM_ARGS))
def test_every_rlvr_algorithm_runs(tiny: Path, tmp_path: Path, algorithm: str) -> None:
    info = run_recipe("rlvr", None, _rl(tiny, f"algorithm={algorithm}", "lora.enabled=false"), tmp_path)
    assert info["steps"] == 2 and info["algorithm"] == algorithm
    assert (tmp_path / "model" / "config.json").exists()
    series = Store(tmp_path / "store.sqlite").metric_series("rlvr")
    for key in ("reward", "reward_std", "success_rate", "completions/mean_length", "entropy",
                "clip_ratio/region_mean", "kl_seq/k1", "kl_seq/k2", "kl_seq/k3"):
        assert [s for s, _ in series[key]] == [1, 2], key


def _length_reward(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
    """Varies within groups, so advantages are non-zero and the policy moves away from the reference."""
    return [float(len(completion_text(c)) % 5) for c in completions]


class _Snapshots(TrainerCallback):
    """The policy's weights at the start of each step: the policy that sampled that step's rollouts."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def on_step_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        self.states[state.global_step] = {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("lora,beta,kl_mode", [(False, 0.0, "reward"), (True, 0.1, "loss"), (False, 0.1, "loss"),
                                               (True, 0.1, "reward")])
def test_logged_kl_matches_direct_computation(tiny: Path, tmp_path: Path, lora: bool, beta: float,
                                              kl_mode: str) -> None:
    cfg = load_config("rlvr", None, _rl(tiny, f"beta={beta}", f"lora.enabled={lora}", "learning_rate=0.05",
                                        f"kl_mode={kl_mode}",
                                        "max_steps=3", "lora.r=4", "temperature=0.9"))
    snaps = _Snapshots()
    trainer = build_trainer(cfg, tmp_path, reward_funcs=[_length_reward], callbacks=[snaps])
    trainer.record_rollouts = True
    trainer.train()
    logged = [h for h in trainer.state.log_history if "kl_seq/k1" in h]
    assert len(logged) == 3 and len(trainer.rollout_records) == 3

    base = LlamaForCausalLM.from_pretrained(tiny).eval()
    for rec, log in zip(trainer.rollout_records, logged, strict=True):
        policy = copy.deepcopy(base)
        if lora:
            from peft import get_peft_model

            from rlvr_safety.training.common import peft_config

            policy = get_peft_model(policy, peft_config(cfg.lora))
        missing = policy.load_state_dict(snaps.states[rec["step"]], strict=False)
        assert not [k for k in missing.missing_keys if "lora" in k or not lora]
        policy.eval()
        ids = torch.cat([rec["prompt_ids"], rec["completion_ids"]], dim=1)
        att = torch.cat([rec["prompt_mask"], rec["completion_mask"]], dim=1)
        keep = rec["completion_ids"].size(1)
        logp = completion_token_logprobs(policy, ids, att, keep, cfg.temperature)
        ref = ReferenceHandle(policy, None if lora else base).token_logprobs(ids, att, keep, cfg.temperature)
        direct = sequence_estimators(logp, ref, rec["completion_mask"])
        for k in ("k1", "k2", "k3"):
            assert torch.allclose(direct[k], rec[k], rtol=1e-3, atol=1e-4), k
            assert log[f"kl_seq/{k}"] == pytest.approx(direct[k].mean().item(), rel=1e-3, abs=1e-4), k
    assert logged[-1]["kl_seq/k3"] > 1e-4  # the policy really moved, so the check is not 0 == 0


class _StopAtOne:
    name, every = "custom", 1

    def __init__(self) -> None:
        self.saw_ref = False

    def __call__(self, step: int, model: Any, tokenizer: Any, ref: ReferenceHandle | None) -> MonitorResult:
        with ref.model() as m:  # the interface gives access to pi_ref (LoRA: adapter off)
            self.saw_ref = m is not None
        return MonitorResult({"score": float(step)}, stop=step >= 1)


def test_sft_runs_streams_metrics_stops_on_monitor_and_resumes(tiny: Path, tmp_path: Path) -> None:
    from rlvr_safety.training import sft

    args = [f"model={tiny}", "max_steps=2", "per_device_train_batch_size=4", "task.limit=8", "max_length=64",
            "probe.every=1", "probe.n=1", "probe.max_new_tokens=4", "save_steps=1", "learning_rate=0.01"]
    info = run_recipe("sft", None, args, tmp_path)
    assert info["steps"] == 2 and (tmp_path / "model" / "model.safetensors").exists()
    series = Store(tmp_path / "store.sqlite").metric_series("sft")
    losses = [v for _, v in series["loss"]]
    assert len(losses) == 2 and losses[-1] < losses[0]  # loss goes down on repeated data at a high lr
    assert [s for s, _ in series["probe/refusal_rate"]] == [1, 2]  # the judged probe ran every step

    info = run_recipe("sft", None, [*args, "max_steps=3"], tmp_path, resume=True)
    assert info["steps"] == 3  # resumed from checkpoint-2, did one more step
    assert not list(tmp_path.glob(".model.*"))  # no temp folder left behind by the atomic save

    cfg = load_config("sft", None, [*args, "probe.enabled=false"])
    mon = _StopAtOne()
    loaded = sft.common.load_policy(cfg)
    info = sft.run_sft_trainer(cfg, tmp_path / "mon", False, "sft", sft.sft_dataset(cfg), loaded, [mon])
    assert info["stopped_by"] == "custom" and info["steps"] == 1 and mon.saw_ref
    assert info["last_metrics"]["custom/score"] == 1.0


def test_guard_runs_and_builds_refusal_data(tiny: Path, tmp_path: Path) -> None:
    from rlvr_safety.training.guard import REFUSALS, split_harmful

    args = [f"model={tiny}", "max_steps=2", "per_device_train_batch_size=4", "n_harmful=6", "heldout=3",
            "n_benign=2", "benign=[arithmetic]", "benign_max_new_tokens=6", "check_every=1", "check_max_new_tokens=4",
            "max_length=64", "probe.enabled=false", "target_refusal=1.0"]
    cfg = load_config("guard", None, args)
    train, heldout = split_harmful(cfg)
    assert len(train) == 6 and len(heldout) == 3 and not set(train) & set(heldout)
    assert len(set(REFUSALS)) >= 15
    from rlvr_safety.judges.registry import get_judge

    verdicts = get_judge("keyword").judge(["x"] * len(REFUSALS), list(REFUSALS))
    assert all(v.refused for v in verdicts)  # every template reads as a refusal to the stopping rule's judge
    info = run_recipe("guard", None, args, tmp_path)
    assert info["examples"] >= 6 and info["heldout_refusal_rate"] is not None
    assert "guard/refusal_rate" in info["last_metrics"]


def test_rlhf_trains_reward_model_then_rl(tiny: Path, tmp_path: Path) -> None:
    args = _rl(tiny, "reward_model.limit=8", "reward_model.max_steps=2", "reward_model.per_device_train_batch_size=4",
               "reward_model.max_length=64", "algorithm=rloo")
    info = run_recipe("rlhf", None, args, tmp_path)
    assert (tmp_path / "reward_model" / "config.json").exists() and info["steps"] == 2
    store = Store(tmp_path / "store.sqlite")
    assert "loss" in store.metric_series("reward_model")
    series = store.metric_series("rlhf")
    assert "rewards/learned_rm/mean" in series and "success_rate" in series and "kl_seq/k3" in series


def test_rlvr_config_wires_the_live_certificate(tiny: Path, tmp_path: Path) -> None:
    """certificate.enabled in an RL config adds the certificate monitor: floors and KL are logged with the run."""
    info = run_recipe("rlvr", None, _rl(tiny, "lora.enabled=false", "certificate.enabled=true", "certificate.every=1",
                                        "certificate.n=1", "certificate.k=1", "certificate.max_new_tokens=4",
                                        "certificate.benchmarks=[harmbench]"), tmp_path)
    assert info["steps"] == 2
    series = Store(tmp_path / "store.sqlite").metric_series("rlvr")
    for key in ("cert/kl_k1", "cert/floor", "cert/s_ref"):
        assert key in series and len(series[key]) >= 1, key
    s_ref = series["cert/s_ref"][-1][1]
    assert 0.0 <= series["cert/floor"][-1][1] <= s_ref <= 1.0
