"""hf backend (batched, length-sorted, left-padded) vs a plain one-prompt-at-a-time `model.generate` loop, and the
hf backend in bf16 vs fp32 (the CPU default is bf16 only with AMX, models.cpu_dtype_name: without AMX bf16 matmuls
are slower than fp32's here, though small-batch decoding, bound by reading the weights, can still gain).

Same prompts, same greedy settings, same model, same process. Prints tokens/s for each and the ratios.
Usage: python benchmarks/generation_throughput.py [--model default] [--n 64] [--max-new-tokens 64] [--batch-size 16]
       [--bf16-batch-size 64] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from rlvr_safety.data import load_benchmark
from rlvr_safety.generation.base import GenerationParams
from rlvr_safety.generation.hf import HFGenerator, encode_prompt
from rlvr_safety.models import cpu_bf16_native, resolve_model


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


def timed(gen: HFGenerator, texts: list[str], max_new_tokens: int, batch_size: int) -> tuple[float, int, list[str]]:
    t0 = time.perf_counter()
    outs = gen.generate(texts, GenerationParams(max_new_tokens=max_new_tokens, batch_size=batch_size), progress=False)
    return time.perf_counter() - t0, sum(c.completion_tokens for c in outs), [c.text for c in outs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--bf16-batch-size", type=int, default=None, help="default: --batch-size")
    ap.add_argument("--skip-baseline", action="store_true", help="only the fp32 vs bf16 comparison")
    args = ap.parse_args()
    texts = prompts(args.n)
    fp32 = resolve_model(args.model, dtype="fp32")
    gen = HFGenerator(fp32.model, fp32.tokenizer)
    gen.generate(texts[:2], GenerationParams(max_new_tokens=4), progress=False)  # warm-up
    print(f"device={fp32.device} model={args.model} prompts={len(texts)} max_new_tokens={args.max_new_tokens} "
          f"batch_size={args.batch_size} torch_threads={torch.get_num_threads()} bf16_default={cpu_bf16_native()} "
          f"load={os.getloadavg()[0]:.2f}")

    if not args.skip_baseline:
        t0 = time.perf_counter()
        base_tokens = baseline(fp32, texts, args.max_new_tokens)
        t_base = time.perf_counter() - t0
        print(f"baseline loop fp32 : {len(texts) / t_base:7.2f} completions/s  ({base_tokens / t_base:8.1f} tok/s, "
              f"{t_base:.1f}s)")
    t32, tok32, text32 = timed(gen, texts, args.max_new_tokens, args.batch_size)
    print(f"hf backend fp32    : {len(texts) / t32:7.2f} completions/s  ({tok32 / t32:8.1f} tok/s, {t32:.1f}s)")
    if not args.skip_baseline:
        print(f"ratio (hf / baseline completions/s): {t_base / t32:.2f}x")
    del gen, fp32

    bf16 = resolve_model(args.model, dtype="bf16")
    gen16 = HFGenerator(bf16.model, bf16.tokenizer)
    gen16.generate(texts[:2], GenerationParams(max_new_tokens=4), progress=False)
    bs16 = args.bf16_batch_size or args.batch_size
    t16, tok16, text16 = timed(gen16, texts, args.max_new_tokens, bs16)
    same = sum(a == b for a, b in zip(text32, text16, strict=True))
    print(f"hf backend bf16    : {len(texts) / t16:7.2f} completions/s  ({tok16 / t16:8.1f} tok/s, {t16:.1f}s, "
          f"batch {bs16})")
    print(f"ratio (bf16 / fp32 tok/s): {(tok16 / t16) / (tok32 / t32):.2f}x; identical greedy completions "
          f"{same}/{len(texts)} (bf16 rounding changes some argmax ties; compare eval metrics, not strings)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
