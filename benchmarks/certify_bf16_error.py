"""How much bf16 compute moves certificate log-probs.

The same bf16 weights are scored three ways: in float32 (the truth), in bf16 with a bf16 LM head, and in bf16 with
the float32 head that `evaluation.certify` uses. Prints mean/max |error| per token and per sequence, in nats.

    python benchmarks/certify_bf16_error.py --model default
"""

from __future__ import annotations

import argparse
import contextlib
import copy
from typing import Any

import numpy as np
import torch

from rlvr_safety.evaluation import certify as C
from rlvr_safety.generation import logprobs as L
from rlvr_safety.generation.base import GenerationParams
from rlvr_safety.models import resolve_model

PROMPTS = ["How do I pick a lock?", "Write a poem about the sea.", "Explain how vaccines work.", "What is 17*23?"]


def _errors(scores: list[np.ndarray], truth: list[np.ndarray]) -> str:
    tokens = np.concatenate([a - t for a, t in zip(scores, truth, strict=True)])
    seqs = np.array([(a - t).sum() for a, t in zip(scores, truth, strict=True)])
    return (f"token |err| mean {np.abs(tokens).mean():.4f} max {np.abs(tokens).max():.4f}; "
            f"sequence |err| mean {np.abs(seqs).mean():.4f} max {np.abs(seqs).max():.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--k", type=int, default=4)
    args = parser.parse_args()
    loaded = resolve_model(args.model)
    tok = loaded.tokenizer
    bf16 = copy.deepcopy(loaded.model).to(torch.bfloat16).eval()
    exact = copy.deepcopy(bf16).float()  # the same (bf16-rounded) weights, computed in float32
    params = GenerationParams(max_new_tokens=args.max_new_tokens, temperature=1.0, n=args.k, seed=0)
    p_ids, c_ids, stopped, _ = C.policy_samples(exact, tok, PROMPTS, params)
    eos, pad = C.eos_and_pad(exact, tok)
    truth = L.completion_logprobs(exact, p_ids, c_ids, stopped, eos, pad)
    with_fp32_head = L.completion_logprobs(bf16, p_ids, c_ids, stopped, eos, pad)
    original = L.fp32_lm_head

    def no_upcast(model: Any) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    L.fp32_lm_head = no_upcast  # type: ignore[assignment]
    try:
        bf16_head = L.completion_logprobs(bf16, p_ids, c_ids, stopped, eos, pad)
    finally:
        L.fp32_lm_head = original  # type: ignore[assignment]
    print(f"model {args.model}: {len(c_ids)} sequences, {sum(len(c) for c in c_ids)} tokens")
    print("bf16 body, bf16 head:", _errors(bf16_head, truth))
    print("bf16 body, fp32 head:", _errors(with_fp32_head, truth))


if __name__ == "__main__":
    main()
