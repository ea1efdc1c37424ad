"""Where and how weights are loaded on a GPU machine, checked on a CPU: straight onto the GPU (no host copy first),
and whole under a ZeRO-3 launch even after a trainer registered DeepSpeed with transformers (#18)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM
from transformers.integrations import deepspeed as hf_deepspeed

from rlvr_safety import models
from rlvr_safety.errors import UserError


def test_gpu_loads_go_straight_to_the_device(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    real = AutoModelForCausalLM.from_pretrained

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("device_map"))
        if kwargs.get("device_map") is not None:
            raise RuntimeError("no GPU here")  # the kwargs are what this test is about
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    for device in ("cuda:1", "cuda"):
        with pytest.raises(UserError, match="no GPU here"):
            models.resolve_model(str(tiny_model_dir), device=device, dtype="bf16")
    loaded = models.resolve_model(str(tiny_model_dir), device="cpu")
    assert seen == [{"": "cuda:1"}, {"": "cuda:3"}, None]  # a bare "cuda" is the current GPU, as .to("cuda")
    assert loaded.device.type == "cpu"


class _Zero3:
    """What a TrainingArguments under a ZeRO-3 launch registers with transformers (HfDeepSpeedConfig)."""

    config: dict[str, Any] = {"zero_optimization": {"stage": 3}}

    def is_zero3(self) -> bool:
        return True


def test_recipes_load_whole_models_under_a_registered_zero3_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from rlvr_safety.training import common
    from rlvr_safety.training.config import SFTConfig
    from rlvr_safety.training.distributed import unsharded_loading

    registered = _Zero3()
    hf_deepspeed.set_hf_deepspeed_config(registered)
    try:
        assert hf_deepspeed.is_deepspeed_zero3_enabled()
        with unsharded_loading():
            assert not hf_deepspeed.is_deepspeed_zero3_enabled()  # from_pretrained would not use zero.Init
        assert hf_deepspeed.is_deepspeed_zero3_enabled()  # put back for the trainer

        during: list[bool] = []

        def fake_resolve(spec: str, device: str | None = None, dtype: str | None = None) -> Any:
            during.append(hf_deepspeed.is_deepspeed_zero3_enabled())
            model = torch.nn.Linear(2, 2)
            model.config = SimpleNamespace(use_cache=True)  # type: ignore[assignment]
            return SimpleNamespace(model=model, tokenizer=SimpleNamespace(padding_side="right"))

        monkeypatch.setattr(models, "resolve_model", fake_resolve)
        monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
        monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
        common.load_policy(SFTConfig(device="cpu", dtype="fp32"))
        assert during == [False] and hf_deepspeed.is_deepspeed_zero3_enabled()
    finally:
        hf_deepspeed.unset_hf_deepspeed_config()


def test_a_sharded_save_is_reloaded_whole_for_the_final_write(tiny_model_dir: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """After trainer.save_model gathered a ZeRO-3 model, rank 0 reloads it to write DIR/model: not partitioned."""
    from transformers import LlamaForCausalLM

    from rlvr_safety.training import distributed

    real = LlamaForCausalLM.from_pretrained.__func__  # type: ignore[attr-defined]
    during: list[bool] = []

    def spy(cls: Any, *args: Any, **kwargs: Any) -> Any:
        during.append(hf_deepspeed.is_deepspeed_zero3_enabled())
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(LlamaForCausalLM, "from_pretrained", classmethod(spy))
    policy = real(LlamaForCausalLM, str(tiny_model_dir))
    trainer = SimpleNamespace(model=policy, accelerator=SimpleNamespace(unwrap_model=lambda m: m))
    registered = _Zero3()  # transformers keeps a weak reference: hold it
    hf_deepspeed.set_hf_deepspeed_config(registered)
    try:
        reloaded = distributed._load_saved(trainer, tiny_model_dir, None)
        assert hf_deepspeed.is_deepspeed_zero3_enabled()
    finally:
        hf_deepspeed.unset_hf_deepspeed_config()
    assert during == [False]
    assert all(p.numel() > 0 for p in reloaded.parameters())
