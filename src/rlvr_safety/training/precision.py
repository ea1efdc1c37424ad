"""Which dtype a recipe loads its weights in, and which autocast it trains under.

`dtype` in a config names the compute precision. What is *stored* follows from what is trained:

- full fine-tuning in bf16/fp16: the weights stay fp32 (the master copy the optimizer updates) and the forward runs
  under autocast. Pure bf16 weights lose small updates: bf16 keeps 8 significant bits, so an Adam step of
  lr = 1e-5 on a weight of 0.02 (its spacing there is 1.2e-4) rounds back to the same weight, and training
  silently does nothing (tests/test_training_distributed.py shows both). Pure fp16 weights also break the gradient
  scaler ("Attempting to unscale FP16 gradients"); fp32 masters avoid both.
- LoRA: the frozen base is stored in `dtype` (half the memory), the adapter in fp32 (peft's default), and the
  forward runs under autocast. Only fp32 parameters are trained, so fp16's gradient scaler works.
- fp32: no autocast.

fp16 needs CUDA (autocast to fp16 on a CPU is not supported by accelerate); use bf16 or fp32 there.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlvr_safety.errors import UserError


@dataclass(frozen=True)
class Precision:
    device: str  # cpu | cuda | cuda:N, as resolved (before rank placement)
    load_dtype: str  # fp32 | bf16 | fp16: the weights as loaded
    bf16: bool  # autocast to bf16 (TrainingArguments.bf16)
    fp16: bool  # autocast to fp16 with a gradient scaler (TrainingArguments.fp16)

    @property
    def compute_dtype(self) -> str:
        return "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"


def precision_plan(device: str | None, dtype: str | None, full_finetune: bool) -> Precision:
    """The load dtype and autocast for a recipe (see the module docstring)."""
    import torch

    from rlvr_safety.models import pick_device_and_dtype

    dev, torch_dtype = pick_device_and_dtype(device, dtype)
    if torch_dtype == torch.float32:
        return Precision(dev, "fp32", False, False)
    half = "bf16" if torch_dtype == torch.bfloat16 else "fp16"
    if half == "fp16" and not dev.startswith("cuda"):
        raise UserError(f"dtype fp16 needs a CUDA device (device is {dev}); use dtype bf16 or fp32")
    return Precision(dev, "fp32" if full_finetune else half, half == "bf16", half == "fp16")
