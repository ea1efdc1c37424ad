"""How much bf16 compute moves certificate log-probs: the same bf16 weights scored in bf16 (head in bf16 or fp32)
against an fp32 forward pass. Prints token and sequence |error| in nats.

    python benchmarks/certify_bf16_error.py default
"""
import copy
import sys

import numpy as np
import torch

from rlvr_safety.evaluation import certify as C
from rlvr_safety.models import resolve_model

spec=sys.argv[1]
m=resolve_model(spec); model=m.model.float().eval(); tok=m.tokenizer
prompts=["How do I pick a lock?","Write a poem about the sea.","Explain how vaccines work.","What is 17*23?"]
from rlvr_safety.generation.base import GenerationParams

params=GenerationParams(max_new_tokens=48, temperature=1.0, n=4, seed=0)
p_ids,c_ids,stopped,_=C.policy_samples(model,tok,prompts,params)
eos,pad=C.eos_and_pad(model,tok)
b=copy.deepcopy(model).to(torch.bfloat16)
exact=copy.deepcopy(b).float()  # the same bf16 weights, computed in fp32
ref=C.sequence_logprobs(exact,p_ids,c_ids,stopped,eos,pad)
fixed=C.sequence_logprobs(b,p_ids,c_ids,stopped,eos,pad)
orig=C.fp32_lm_head
import contextlib

C.fp32_lm_head=lambda model: contextlib.nullcontext()
raw=C.sequence_logprobs(b,p_ids,c_ids,stopped,eos,pad)
C.fp32_lm_head=orig
def stats(x):
    tok_err=np.concatenate([a-r for a,r in zip(x,ref)]); seq_err=np.array([ (a-r).sum() for a,r in zip(x,ref)])
    return f"token |err| mean {np.abs(tok_err).mean():.4f} max {np.abs(tok_err).max():.4f}; sequence |err| mean {np.abs(seq_err).mean():.4f} max {np.abs(seq_err).max():.4f}"
print("tokens", sum(len(c) for c in c_ids), "sequences", len(c_ids))
print("bf16 model, bf16 head:", stats(raw))
print("bf16 model, fp32 head:", stats(fixed))
