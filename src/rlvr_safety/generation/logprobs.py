"""Log-probs of completions under a model and the KL estimators over them: the one module training, the
certificate and the theory's estimators get them from (DESIGN.md section 2).

One padding convention: rows are left-padded, so every completion ends at the last position, and only the logits
of the last `keep` positions are computed (the LM head over long prompts would dominate the cost).
- `completion_logprobs`: per-sequence numpy arrays of log pi(y_t | x, y_<t) for given token ids (plus the stop
  event), float32 head, explicit position ids: what the certificate and theory.estimators take.
- `token_logprobs`: the same quantity in GRPOTrainer's rollout layout (left-padded prompt | completion), a
  (B, keep) tensor comparable with what the trainer logs.
- `per_token_estimators` / `sequence_estimators` / `sequence_kl`: k1, k2, k3 on tensors during training. Per token
  t of y ~ pi with l_t = log pi(y_t|.) - log pi_ref(y_t|.): k1 = l_t (unbiased, can be negative), k2 = l_t^2 / 2
  (low variance, biased), k3 = exp(-l_t) - 1 + l_t (unbiased for the per-token KL, >= 0; TRL's GRPO penalty),
  each summed over the completion (the sequence-level KL is the sum of per-token terms). theory.estimators holds
  the numpy definitions the certificate uses (theory/ imports no torch); a test pins the two equal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .grad import no_grad

__all__ = ["ESTIMATORS", "completion_logprobs", "forward_last", "fp32_lm_head", "model_device",
           "per_token_estimators", "sequence_estimators", "sequence_kl", "token_logprobs"]

ESTIMATORS = ("k1", "k2", "k3")


def model_device(model: Any) -> Any:
    return next(model.parameters()).device


@contextlib.contextmanager
def fp32_lm_head(model: Any) -> Iterator[None]:
    """Compute the LM head in float32 for the duration (hidden states upcast, weights upcast per call).

    A bf16 head rounds each logit by up to ~0.06 at magnitudes ~10-30; summed over dozens of tokens that is the
    size of the KL being certified. Only the head's own matmul changes: whatever the model does after it (logit
    soft-capping, scaling) still runs, now on float32 logits. No-op for a float32 head.
    """
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if head is None or weight is None or weight.dtype == torch.float32:
        yield
        return
    bias = getattr(head, "bias", None)

    def forward(hidden: Any) -> Any:
        return torch.nn.functional.linear(hidden.float(), head.weight.float(),
                                          None if bias is None else bias.float())

    head.forward = forward
    try:
        yield
    finally:
        del head.forward  # back to the class's forward


def forward_last(model: Any, ids: Any, mask: Any, keep: int) -> Any:
    """Float32 logits of the last `keep` positions of left-padded rows (position ids from the first real token)."""
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    with fp32_lm_head(model):
        try:
            logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids, logits_to_keep=keep).logits
        except TypeError:  # a model without logits_to_keep: compute all, keep the tail
            logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids).logits
    return logits[:, -keep:]


def completion_logprobs(model: Any, prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]],
                        stopped: Sequence[bool], eos_ids: Sequence[int], pad_id: int,
                        batch_size: int = 8) -> list[np.ndarray]:
    """Per-token log pi(y_t | x, y_<t) of each completion, plus log sum_eos pi(eos) if it stopped.

    The stop term makes the sum the log-probability of the *text* the sampler produced (any EOS id ends it the
    same way), which is what the KL between two samplers is about.
    """
    import torch

    n = len(prompt_ids)
    if not n == len(completion_ids) == len(stopped):
        raise ValueError("prompt_ids, completion_ids and stopped must have the same length")
    if any(len(p) < 1 for p in prompt_ids):
        raise ValueError("every prompt needs at least one token")
    eos = sorted({int(e) for e in eos_ids})
    if any(stopped) and not eos:
        raise ValueError("a stopped sequence needs at least one EOS id")
    out: list[np.ndarray] = [np.zeros(0)] * n
    order = sorted(range(n), key=lambda i: -(len(prompt_ids[i]) + len(completion_ids[i])))
    device = model_device(model)
    eos_t = torch.tensor(eos, dtype=torch.long, device=device) if eos else None
    with no_grad():  # torch.no_grad inside a training-time monitor (generation/grad.py)
        for start in range(0, n, max(1, batch_size)):
            idx = order[start:start + batch_size]
            seqs = [list(prompt_ids[i]) + list(completion_ids[i]) for i in idx]
            width = max(len(s) for s in seqs)
            keep = max(len(completion_ids[i]) for i in idx) + 1
            ids = torch.full((len(seqs), width), int(pad_id), dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for r, s in enumerate(seqs):
                ids[r, width - len(s):] = torch.tensor(s, dtype=torch.long)
                mask[r, width - len(s):] = 1
            ids, mask = ids.to(device), mask.to(device)
            # one log-softmax, one gather and one device-to-host copy per batch (not per row: each .cpu() of a
            # row would wait for the GPU)
            ls = torch.log_softmax(forward_last(model, ids, mask, keep).float(), dim=-1)  # (B, keep, V)
            # kept position j predicts token width-keep+1+j; the last kept position predicts what follows the row
            targets = torch.cat([ids[:, width - keep + 1:], torch.zeros_like(ids[:, :1])], dim=1)
            token_lp = ls.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, keep); the last column unused
            stop_lp = (torch.logsumexp(ls[:, -1, eos_t], dim=-1) if eos_t is not None
                       else torch.zeros(len(idx), device=ls.device))
            token_np = token_lp.double().cpu().numpy()
            stop_np = stop_lp.double().cpu().numpy()
            for r, i in enumerate(idx):
                c = len(completion_ids[i])
                lp = token_np[r, keep - 1 - c:keep - 1]  # the row's c completion tokens end at position keep-2
                out[i] = np.concatenate([lp, stop_np[r:r + 1]]) if stopped[i] else lp.copy()
    return out


def token_logprobs(model: Any, input_ids: Any, attention_mask: Any, logits_to_keep: int,
                   temperature: float = 1.0) -> Any:
    """log pi(y_t | x, y_<t) for the last `logits_to_keep` tokens of each row, with TRL's temperature scaling.

    Rows are [prompt (left-padded) | completion], exactly as GRPOTrainer lays them out, so a value computed here
    is comparable to what the trainer logs.
    """
    import torch

    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        logits = logits[:, -logits_to_keep - 1:-1, :].float() / temperature
        targets = input_ids[:, -logits_to_keep:]
        return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def per_token_estimators(logp: Any, ref_logp: Any) -> dict[str, Any]:
    """The three per-token estimators, same shape as the inputs (B, T)."""
    import torch

    lr = logp.float() - ref_logp.float()
    return {"k1": lr, "k2": 0.5 * lr * lr, "k3": torch.expm1(-lr) + lr}


def sequence_estimators(logp: Any, ref_logp: Any, mask: Any) -> dict[str, Any]:
    """Per-completion sums of each estimator over its unmasked tokens: {name: (B,)}."""
    m = mask.float()
    return {k: (v * m).sum(-1) for k, v in per_token_estimators(logp, ref_logp).items()}


def sequence_kl(logp: Any, ref_logp: Any, mask: Any) -> dict[str, float]:
    """Mean over completions of the sequence-level estimators: {"k1": ..., "k2": ..., "k3": ...}."""
    return {k: float(v.mean().item()) for k, v in sequence_estimators(logp, ref_logp, mask).items()}
