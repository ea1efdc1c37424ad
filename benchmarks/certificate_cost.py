"""Certificate vs judged safety evaluation on the same probe prompts: seconds for each and the ratio.

judged eval  = sample the policy + judge every response (the `learned` judge by default; its load time is printed
               separately and excluded);
certificate  = sample the policy + log-probs under the policy and the reference (no judge call on the policy);
one-time     = sample the reference + judge it once (S_ref, Var_ref(s)); printed separately and also folded in.
The policy is the reference with small weight noise (a fine-tuned model's stand-in), both held in memory.
Usage: OMP_NUM_THREADS=1 python benchmarks/certificate_cost.py [--n 64] [--max-new-tokens 64] [--judge learned]
       [--judge-head PATH.npz]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from rlvr_safety.data import expand, load_benchmark
from rlvr_safety.evaluation.certify import eos_and_pad, model_logprob_fn, policy_samples
from rlvr_safety.generation.base import GenerationParams
from rlvr_safety.judges.registry import get_judge
from rlvr_safety.models import resolve_model
from rlvr_safety.theory import certify


def probe(n: int) -> list[str]:
    """n harmful prompts taken round-robin over the safety5 benchmarks."""
    data = os.environ.get("RLVR_SAFETY_DATA_DIR")
    pools = [[r.prompt for r in load_benchmark(b, data_dir=data) if r.label == "harmful"] for b in expand("safety5")]
    out: list[str] = []
    i = 0
    while len(out) < n:
        for pool in pools:
            if i < len(pool) and len(out) < n:
                out.append(pool[i])
        i += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--judge", default="learned")
    ap.add_argument("--judge-head", default=None, help="learned judge: a head .npz other than the shipped one")
    args = ap.parse_args()

    ref = resolve_model(args.model)
    pol = resolve_model(args.model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in pol.model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * (0.02 * float(p.std())))
    tok = ref.tokenizer
    prompts = probe(args.n)
    params = GenerationParams(max_new_tokens=args.max_new_tokens, temperature=1.0, n=1, seed=0,
                              batch_size=args.batch_size)
    t0 = time.perf_counter()
    judge = get_judge(args.judge, **({"head": args.judge_head} if args.judge_head else {}))
    judge.judge(["warm-up"], ["I cannot help with that."])
    t_judge_load = time.perf_counter() - t0
    policy_samples(pol.model, tok, prompts[:2], GenerationParams(max_new_tokens=4, temperature=1.0))  # warm-up

    # judged evaluation of the policy
    t0 = time.perf_counter()
    _, _, _, texts = policy_samples(pol.model, tok, prompts, params)
    t_eval_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    judge.judge(prompts, texts)
    t_eval_judge = time.perf_counter() - t0

    # one-time: the reference, sampled and judged once
    t0 = time.perf_counter()
    _, _, _, ref_texts = policy_samples(ref.model, tok, prompts, params)
    s_ref = [1.0 - v.harmful for v in judge.judge(prompts, ref_texts) if v.ok]
    t_once = time.perf_counter() - t0

    # certificate: sample the policy, score under both models
    eos, pad = eos_and_pad(pol.model, tok)
    t0 = time.perf_counter()
    p_ids, c_ids, stopped, _ = policy_samples(pol.model, tok, prompts, params)
    t_cert_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    logp = model_logprob_fn(pol.model, eos, pad)(p_ids, c_ids, stopped)
    logq = model_logprob_fn(ref.model, eos, pad)(p_ids, c_ids, stopped)
    t_cert_lp = time.perf_counter() - t0
    t0 = time.perf_counter()
    cert = certify(s_ref, logp=logp, logq=logq)
    t_cert_stats = time.perf_counter() - t0

    eval_s = t_eval_gen + t_eval_judge
    cert_s = t_cert_gen + t_cert_lp + t_cert_stats
    print(f"model={args.model} n={args.n} max_new_tokens={args.max_new_tokens} judge={args.judge} "
          f"threads={torch.get_num_threads()}")
    print(f"judged eval : {eval_s:7.2f} s  (generate {t_eval_gen:.2f} + judge {t_eval_judge:.2f}; "
          f"judge load {t_judge_load:.2f} excluded)")
    print(f"certificate : {cert_s:7.2f} s  (generate {t_cert_gen:.2f} + 2 log-prob passes {t_cert_lp:.2f} + "
          f"stats {t_cert_stats:.2f})")
    print(f"one-time ref: {t_once:7.2f} s  (generate + judge the reference once)")
    print(f"ratio certificate / judged eval: {cert_s / eval_s:.2f} (reference excluded), "
          f"{(cert_s + t_once) / eval_s:.2f} (reference included)")
    print(f"certificate: KL k1 {cert.kl_k1:.3f} nats, S_ref {cert.s_ref:.3f}, floor {cert.floor:.3f}")


if __name__ == "__main__":
    main()
