"""One LoRA training step (forward, backward, AdamW) of the default model in fp32, in bf16 under autocast (what the
recipes do for LoRA with dtype bf16: training/precision.py) and with bf16 weights without autocast; interleaved
repetitions in one process, min and median per variant, ratios to fp32.

Usage: python benchmarks/train_step_dtype.py [--batch 8] [--seq 64] [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model

from rlvr_safety.models import cpu_bf16_native, resolve_model

VARIANTS = {"fp32": ("fp32", False), "bf16 + autocast": ("bf16", True), "bf16 weights": ("bf16", False)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    models = {}
    for name, (dtype, _) in VARIANTS.items():
        m = get_peft_model(resolve_model(args.model, dtype=dtype).model,
                           LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
        m.train()
        models[name] = (m, torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4))
    ids = torch.randint(100, 20000, (args.batch, args.seq))
    times: dict[str, list[float]] = {n: [] for n in VARIANTS}
    for rep in range(args.reps + 1):  # the first round warms up (oneDNN compiles bf16 kernels per shape)
        for name, (m, opt) in models.items():
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=VARIANTS[name][1]):
                loss = m(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            if rep:
                times[name].append(time.perf_counter() - t0)
    print(f"model={args.model} batch={args.batch} seq={args.seq} reps={args.reps} threads={torch.get_num_threads()} "
          f"bf16_default={cpu_bf16_native()} load={os.getloadavg()[0]:.2f}")
    base = min(times["fp32"])
    for name, ts in times.items():
        print(f"{name:16s}: min {min(ts):7.2f} s  median {statistics.median(ts):7.2f} s  "
              f"speed-up vs fp32 (min) {base / min(ts):.2f}x")


if __name__ == "__main__":
    main()
