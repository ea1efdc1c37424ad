"""The objective the rlvr trainer really optimises, on a tiny random model: with kl_mode="reward" each sequence's
reward has beta * sum_t log(pi/pi_ref) subtracted and the loss has no KL term; with "loss" the reverse. The logged
sequence KL covers only tokens the loss sees. The reference is the model training started from in every
combination of full/LoRA training, adapter folder or not, beta zero or not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import LlamaForCausalLM, TrainerCallback

from rlvr_safety.rewards.base import completion_text
from rlvr_safety.training.config import load_config
from rlvr_safety.training.kl import completion_token_logprobs, sequence_estimators
from rlvr_safety.training.rlvr import build_trainer


@pytest.fixture(autouse=True)
def _local_data(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLVR_SAFETY_DATA_DIR", str(data_dir))


def _rl(model: Path, *extra: str) -> list[str]:
    return [f"model={model}", "max_steps=2", "per_device_train_batch_size=4", "num_generations=2",
            "max_completion_length=6", "task.limit=8", "probe.enabled=false", "device=cpu", *extra]


def _length_reward(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
    return [float(len(completion_text(c)) % 5) for c in completions]


class _Snapshots(TrainerCallback):
    def __init__(self) -> None:
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def on_step_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        self.states[state.global_step] = {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("kl_mode", ["reward", "loss"])
def test_where_the_kl_goes(tiny_model_dir: Path, tmp_path: Path, kl_mode: str) -> None:
    beta = 0.5
    cfg = load_config("rlvr", None, _rl(tiny_model_dir, f"kl_mode={kl_mode}", f"beta={beta}", "lora.enabled=false",
                                        "learning_rate=0.05"))
    snaps = _Snapshots()
    trainer = build_trainer(cfg, tmp_path, reward_funcs=[_length_reward], callbacks=[snaps])
    seen: list[dict[str, Any]] = []
    compute = trainer._compute_loss

    def spy(model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        seen.append(inputs)
        return compute(model, inputs)

    trainer._compute_loss = spy  # type: ignore[method-assign]
    trainer.train()
    logs = [h for h in trainer.state.log_history if "kl_seq/k1" in h]
    assert len(logs) == 2 and all(f"kl_seq/{k}" in h for h in logs for k in ("k1", "k2", "k3"))

    # the second batch was sampled by the policy as it was at the start of step 2
    last = trainer.last_batch
    base = LlamaForCausalLM.from_pretrained(tiny_model_dir).eval()
    policy = LlamaForCausalLM.from_pretrained(tiny_model_dir)
    policy.load_state_dict(snaps.states[1], strict=False)
    policy.eval()
    ids = torch.cat([last["prompt_ids"], last["completion_ids"]], dim=1)
    att = torch.cat([last["prompt_mask"], last["completion_mask"]], dim=1)
    keep = last["completion_ids"].size(1)
    lp = completion_token_logprobs(policy, ids, att, keep, cfg.temperature)
    ref = completion_token_logprobs(base, ids, att, keep, cfg.temperature)
    k1 = ((lp - ref) * last["completion_mask"]).sum(-1)
    assert k1.abs().max() > 1e-3  # the policy moved after step 1, so the KL is not 0 by construction

    zero_adv = {**seen[-1], "advantages": torch.zeros_like(seen[-1]["advantages"])}
    with torch.no_grad():
        kl_only_loss = float(compute(trainer.model, zero_adv))
    if kl_mode == "reward":
        # the policy log-probs were recorded while sampling (fp32, no autocast), and equal a fresh forward pass
        assert trainer.sampling_logps_from == "generation"
        assert torch.allclose(last["kl_k1"], k1, atol=1e-4)
        assert torch.allclose(last["shaped"], last["rewards"] - beta * k1, atol=1e-4)
        centred = last["shaped"].view(-1, 2) - last["shaped"].view(-1, 2).mean(1, keepdim=True)
        assert torch.allclose(last["advantages"], centred.reshape(-1), atol=1e-5)  # no std scaling
        assert trainer.beta == 0.0 and kl_only_loss == 0.0  # no KL term in the loss
        assert "kl" not in logs[-1] and "kl_penalty" in logs[-1]
    else:
        assert "shaped" not in last  # the reward is the verifier's, untouched
        grouped = last["rewards"].view(-1, 2)
        scaled = (grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)
        assert torch.allclose(last["advantages"], scaled.reshape(-1), atol=1e-5)
        assert trainer.beta == beta and kl_only_loss > 1e-6 and logs[-1]["kl"] > 0  # TRL's k3 is in the loss

    # logged sequence KL: a completion the loss does not see (mask all 0, as mask_truncated_completions makes it)
    # is left out of the mean, not counted as KL 0
    masked = {**seen[-1], "completion_mask": seen[-1]["completion_mask"].clone()}
    masked["completion_mask"][0] = 0
    trainer._metrics["train"].clear()
    with torch.no_grad():
        compute(trainer.model, masked)
    logged = trainer._metrics["train"]["kl_seq/k1"][-1]
    per_seq = sequence_estimators(trainer._captured_logps, masked["ref_per_token_logps"], masked["completion_mask"])
    assert logged == pytest.approx(per_seq["k1"][1:].mean().item(), rel=1e-5, abs=1e-7)
    assert logged != pytest.approx(per_seq["k1"].mean().item(), rel=1e-3, abs=1e-6)


def test_sampling_logps_are_recorded_only_where_exact(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Recording log-probs while sampling replaces the extra policy forward only in fp32 without autocast; under
    bf16 autocast the cached decoding forward rounds differently from the full one, so the forward pass stays."""
    base = _rl(tiny_model_dir, "kl_mode=reward", "beta=0.1", "lora.enabled=false")
    fp32 = build_trainer(load_config("rlvr", None, base), tmp_path / "fp32")
    assert fp32.own_decode and fp32.record_sampling_logps  # decode.py samples the rollouts and keeps the log-probs
    assert not build_trainer(load_config("rlvr", None, [*base, "dtype=bf16"]), tmp_path / "bf16").record_sampling_logps
    assert not build_trainer(load_config("rlvr", None, [*_rl(tiny_model_dir, "kl_mode=loss")]),
                             tmp_path / "loss").record_sampling_logps


def test_recorded_logps_equal_a_forward_pass_under_lora(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Under a LoRA adapter (generate goes through PeftModel) the recorded sampling log-probs give the same KL in
    the reward as a no-grad forward pass over the rollouts (learning rate 1e-12: the policy stays the sampler)."""
    cfg = load_config("rlvr", None, _rl(tiny_model_dir, "kl_mode=reward", "beta=0.5", "max_steps=1",
                                        "learning_rate=1e-12"))
    trainer = build_trainer(cfg, tmp_path)
    outs: list[dict[str, Any]] = []
    generate_and_score = trainer._generate_and_score_completions

    def spy(inputs: Any) -> dict[str, Any]:
        outs.append(generate_and_score(inputs))
        return outs[-1]

    trainer._generate_and_score_completions = spy  # type: ignore[method-assign]
    trainer.train()
    assert trainer.sampling_logps_from == "generation"
    out = outs[0]
    mask = out["completion_mask"]
    forward = trainer._logps(out, reference=False)
    k1 = ((forward - out["ref_per_token_logps"]) * mask).sum(-1)
    assert torch.allclose(trainer.last_batch["kl_k1"], k1, atol=1e-4)


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter folder on the tiny model with non-zero weights: merged, it is a different model."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    model = get_peft_model(LlamaForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(out)
    return out


@pytest.mark.parametrize(("beta", "kl_mode"), [(0.0, "reward"), (0.1, "loss"), (0.1, "reward")])
@pytest.mark.parametrize("from_adapter", [False, True], ids=["model-folder", "adapter-folder"])
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_reference_is_the_starting_model(tiny_model_dir: Path, adapter_dir: Path, tmp_path: Path, lora: bool,
                                         from_adapter: bool, beta: float, kl_mode: str) -> None:
    from rlvr_safety.models import resolve_model

    spec = adapter_dir if from_adapter else tiny_model_dir
    cfg = load_config("rlvr", None, _rl(spec, f"beta={beta}", f"kl_mode={kl_mode}", f"lora.enabled={lora}",
                                        "lora.r=4"))
    trainer = build_trainer(cfg, tmp_path)
    torch.manual_seed(0)
    batch = {"prompt_ids": torch.randint(3, 1000, (2, 5)), "prompt_mask": torch.ones(2, 5, dtype=torch.long),
             "completion_ids": torch.randint(3, 1000, (2, 4)), "completion_mask": torch.ones(2, 4, dtype=torch.long)}
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    att = torch.ones_like(ids)
    start = resolve_model(str(spec), device="cpu").model
    want = completion_token_logprobs(start, ids, att, 4, cfg.temperature)
    with torch.no_grad():  # training moves every trainable weight; the reference must not move with them
        for p in trainer.model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.5)
    assert torch.allclose(trainer._reference_logps(batch), want, atol=1e-4)
    assert torch.allclose(trainer.reference_handle().token_logprobs(ids, att, 4, cfg.temperature), want, atol=1e-4)
    assert not torch.allclose(trainer._logps(batch, reference=False), want, atol=1e-3)  # the policy did move
    if from_adapter:  # the pre-adapter base model (what TRL rebuilt from the config) is a different model
        base = completion_token_logprobs(LlamaForCausalLM.from_pretrained(tiny_model_dir), ids, att, 4,
                                         cfg.temperature)
        assert not torch.allclose(base, want, atol=1e-3)
