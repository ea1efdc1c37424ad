"""hf backend (batched, length-sorted, left-padded) vs a plain one-prompt-at-a-time `model.generate` loop.

Same 64 prompts, same greedy settings, same model, same process. Prints completions/s for both and the ratio.
Usage: python benchmarks/generation_throughput.py [--model default] [--n 64] [--max-new-tokens 64] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from rlvr_safety.data import load_benchmark
from rlvr_safety.generation.base import GenerationParams
from rlvr_safety.generation.hf import HFGenerator, encode_prompt
from rlvr_safety.models import resolve_model


def prompts(n: int) -> list[str]:
    data = os.environ.get("RLVR_SAFETY_DATA_DIR")
    records = load_benchmark("xstest", data_dir=data, limit=n) if data else []
    texts = [r.prompt for r in records] or [f"Explain idea number {i} in two sentences." for i in range(n)]
    return (texts * (n // max(len(texts), 1) + 1))[:n]


def baseline(loaded, texts: list[str], max_new_tokens: int) -> int:
    tok, model = loaded.tokenizer, loaded.model
    total = 0
    for t in texts:
        ids = torch.tensor([encode_prompt(tok, t)], device=loaded.device)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=tok.pad_token_id)
        total += out.shape[1] - ids.shape[1]
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    loaded = resolve_model(args.model)
    texts = prompts(args.n)
    gen = HFGenerator(loaded.model, loaded.tokenizer)
    gen.generate(texts[:2], GenerationParams(max_new_tokens=4), progress=False)  # warm-up

    t0 = time.perf_counter()
    base_tokens = baseline(loaded, texts, args.max_new_tokens)
    t_base = time.perf_counter() - t0

    t0 = time.perf_counter()
    outs = gen.generate(texts, GenerationParams(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size),
                        progress=False)
    t_ours = time.perf_counter() - t0
    ours_tokens = sum(c.completion_tokens for c in outs)

    print(f"device={loaded.device} model={args.model} prompts={len(texts)} max_new_tokens={args.max_new_tokens} "
          f"batch_size={args.batch_size} torch_threads={torch.get_num_threads()}")
    print(f"baseline loop : {len(texts) / t_base:7.2f} completions/s  ({base_tokens / t_base:8.1f} tok/s, {t_base:.1f}s)")
    print(f"hf backend    : {len(texts) / t_ours:7.2f} completions/s  ({ours_tokens / t_ours:8.1f} tok/s, {t_ours:.1f}s)")
    print(f"ratio (hf / baseline completions/s): {t_base / t_ours:.2f}x")


if __name__ == "__main__":
    main()
