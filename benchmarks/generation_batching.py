"""Token-budget batching (GenerationParams.batch_tokens) against batch_size alone, on the demo eval's own prompts.

The demo's safety prompts mix a few long jailbreak prompts (up to ~370 tokens) with many short ones (~40-60): with
batch_size alone the longest prompt pads its whole batch. Each setting generates the same prompts with the same
sampling settings on the same model in one process (settings interleaved over --reps rounds); prints the padded
prompt positions, the batches, the min time per setting and its speed-up over batch_size alone.

Usage: python benchmarks/generation_batching.py [--model default] [--preset demo] [--budgets 2048 4096 8192]
       [--reps 2]
"""

from __future__ import annotations

import argparse
import os
import time

from rlvr_safety.data import load_benchmark
from rlvr_safety.generation.base import GenerationParams
from rlvr_safety.generation.hf import HFGenerator, encode_prompt, token_batches
from rlvr_safety.models import cpu_dtype_name, resolve_model
from rlvr_safety.study.spec import load_spec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--budgets", type=int, nargs="+", default=[2048, 4096, 8192])
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    data = os.environ.get("RLVR_SAFETY_DATA_DIR")
    spec = load_spec(preset=args.preset)
    safety, _, limits = spec.eval_plan()
    texts = [r.prompt for n in safety for r in load_benchmark(n, data_dir=data, limit=limits[n], seed=spec.eval.task_seed)]
    loaded = resolve_model(args.model)
    gen = HFGenerator(loaded.model, loaded.tokenizer)
    base = spec.eval_config(args.model).safety_params()
    lengths = [len(encode_prompt(loaded.tokenizer, t)) for t in texts]
    settings: list[int | None] = [None, *args.budgets]
    times: dict[int | None, list[float]] = {b: [] for b in settings}
    gen.generate(texts[:2], GenerationParams(max_new_tokens=4), progress=False)  # warm-up
    for _ in range(args.reps):
        for b in settings:
            params = GenerationParams(**{**base.__dict__, "batch_tokens": b})
            t0 = time.perf_counter()
            gen.generate(texts, params, progress=False)
            times[b].append(time.perf_counter() - t0)
    print(f"model={args.model} dtype={cpu_dtype_name()} prompts={len(texts)} prompt tokens={sum(lengths)} "
          f"batch_size={base.batch_size} max_new_tokens={base.max_new_tokens} load={os.getloadavg()[0]:.2f}")
    ref = min(times[None])
    for b in settings:
        batches = token_batches(lengths, base.batch_size, b, base.max_new_tokens)
        padded = sum(len(x) * max(lengths[i] for i in x) for x in batches)
        print(f"batch_tokens {b!s:>6}: {len(batches):2d} batches, padded prompt positions {padded:6d}, "
              f"min {min(times[b]):6.1f} s, speed-up vs batch_size alone {ref / min(times[b]):.2f}x")


if __name__ == "__main__":
    main()
