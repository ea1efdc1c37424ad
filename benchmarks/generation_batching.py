"""Padding-bounded batching (GenerationParams.max_padding) against batch_size alone, on the demo eval's prompts.

The demo's safety prompts mix a few long jailbreak prompts (up to ~370 tokens) with many short ones (~40-60): with
batch_size alone the longest prompt pads its whole batch. Each setting generates the eval's prompts (safety prompts
sampled, held-out arithmetic greedy, as the eval does) on the same model in one process, settings interleaved over
--reps rounds; prints the batches, the padded prompt positions, the min time per setting and its speed-up over
batch_size alone.

Usage: python benchmarks/generation_batching.py [--model default] [--preset demo] [--ratios 1.5 2 3] [--reps 2]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

from rlvr_safety.data import load_benchmark
from rlvr_safety.data.arithmetic import ANSWER_INSTRUCTION
from rlvr_safety.generation.base import GenerationParams
from rlvr_safety.generation.hf import HFGenerator, encode_prompt, length_batches
from rlvr_safety.models import cpu_dtype_name, resolve_model
from rlvr_safety.study.spec import load_spec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--ratios", type=float, nargs="+", default=[1.5, 2.0, 3.0])
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    data = os.environ.get("RLVR_SAFETY_DATA_DIR")
    spec = load_spec(preset=args.preset)
    safety, _, limits = spec.eval_plan()
    texts = [r.prompt for n in safety
             for r in load_benchmark(n, data_dir=data, limit=limits[n], seed=spec.eval.task_seed)]
    tasks = [f"{r.prompt}\n{ANSWER_INSTRUCTION}" for r in load_benchmark("arithmetic", limit=limits["arithmetic"],
                                                                         seed=spec.eval.task_seed)]
    loaded = resolve_model(args.model)
    gen = HFGenerator(loaded.model, loaded.tokenizer)
    cfg = spec.eval_config(args.model)
    jobs = [(texts, cfg.safety_params()), (tasks, cfg.capability_params())]
    lengths = [[len(encode_prompt(loaded.tokenizer, t)) for t in part] for part, _ in jobs]
    settings: list[float | None] = [None, *args.ratios]
    times: dict[float | None, list[float]] = {b: [] for b in settings}
    gen.generate(texts[:2], GenerationParams(max_new_tokens=4), progress=False)  # warm-up
    for _ in range(args.reps):
        for b in settings:
            t0 = time.perf_counter()
            for part, params in jobs:
                gen.generate(part, replace(params, max_padding=b), progress=False)
            times[b].append(time.perf_counter() - t0)
    print(f"model={args.model} dtype={cpu_dtype_name()} safety prompts={len(texts)} (tokens {sum(lengths[0])}) "
          f"arithmetic={len(tasks)} (tokens {sum(lengths[1])}) batch_size={cfg.batch_size} "
          f"load={os.getloadavg()[0]:.2f}")
    ref = min(times[None])
    for b in settings:
        shape = [length_batches(ls, cfg.batch_size, b) for ls in lengths]
        padded = sum(len(x) * max(ls[i] for i in x) for ls, bs in zip(lengths, shape, strict=True) for x in bs)
        rows = " + ".join(str([len(x) for x in bs]) for bs in shape)
        print(f"max_padding {b!s:>4}: batches {rows}, padded prompt positions {padded:6d}, "
              f"min {min(times[b]):6.1f} s, speed-up vs batch_size alone {ref / min(times[b]):.2f}x")


if __name__ == "__main__":
    main()
