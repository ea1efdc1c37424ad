"""The CPU dtype default: bf16 where the CPU has AMX (the only CPUs where it beats fp32), fp32 elsewhere, an env override."""

from __future__ import annotations

import pytest
import torch

from rlvr_safety import models
from rlvr_safety.errors import UserError

AVX512_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n"
PLAIN = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm bf16\n"


@pytest.mark.parametrize(("text", "native"), [(AVX512_BF16, False), (AMX, True), (PLAIN, False), (ARM, False),
                                              ("", False)])
def test_native_bf16_from_cpu_flags(text: str, native: bool) -> None:
    assert models.cpu_bf16_native(text) is native


def test_auto_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(models.CPU_DTYPE_ENV, "auto")
    monkeypatch.setattr(models, "_cpu_bf16", True)
    assert models.pick_device_and_dtype("cpu", None) == ("cpu", torch.bfloat16)
    monkeypatch.setattr(models, "_cpu_bf16", False)
    assert models.pick_device_and_dtype("cpu", None) == ("cpu", torch.float32)


def test_env_forces_either_dtype_and_explicit_dtype_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_cpu_bf16", True)
    monkeypatch.setenv(models.CPU_DTYPE_ENV, "fp32")
    assert models.pick_device_and_dtype("cpu", None)[1] == torch.float32
    monkeypatch.setattr(models, "_cpu_bf16", False)
    monkeypatch.setenv(models.CPU_DTYPE_ENV, "bf16")
    assert models.pick_device_and_dtype("cpu", None)[1] == torch.bfloat16
    assert models.pick_device_and_dtype("cpu", "fp32")[1] == torch.float32
    monkeypatch.setenv(models.CPU_DTYPE_ENV, "half")
    with pytest.raises(UserError, match="RLVR_SAFETY_CPU_DTYPE"):
        models.pick_device_and_dtype("cpu", None)


def test_tiny_model_generates_in_bf16(tiny_model_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    from rlvr_safety.generation.base import GenerationParams
    from rlvr_safety.generation.hf import HFGenerator

    monkeypatch.setenv(models.CPU_DTYPE_ENV, "bf16")
    loaded = models.resolve_model(str(tiny_model_dir), device="cpu")
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    outs = HFGenerator(loaded.model, loaded.tokenizer).generate(
        ["hi", "2+2?"], GenerationParams(max_new_tokens=5, temperature=1.0, seed=1), progress=False)
    assert [len(o.token_ids) for o in outs] == [o.completion_tokens for o in outs]
    assert all(0 < o.completion_tokens <= 5 or o.finish_reason == "stop" for o in outs)
