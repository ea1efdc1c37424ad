"""Sequence-level KL(pi || pi_ref) estimators on completions sampled from pi (DESIGN section 2).

Per token t of a completion y ~ pi, with log-ratio l_t = log pi(y_t|.) - log pi_ref(y_t|.):
  k1 = l_t                      (unbiased, can be negative)
  k2 = l_t^2 / 2                (low variance, biased)
  k3 = exp(-l_t) - 1 + l_t      (unbiased for the per-token KL, always >= 0; TRL's GRPO penalty)
Each is summed over the completion's tokens (the sequence-level KL is the sum of per-token terms) and averaged over
completions. The theory's bounds use the sequence-level KL, so per-token means would understate it by the length.
"""

from __future__ import annotations

from typing import Any

import torch

ESTIMATORS = ("k1", "k2", "k3")


def per_token_estimators(logp: torch.Tensor, ref_logp: torch.Tensor) -> dict[str, torch.Tensor]:
    """The three per-token estimators, same shape as the inputs (B, T)."""
    lr = logp.float() - ref_logp.float()
    return {"k1": lr, "k2": 0.5 * lr * lr, "k3": torch.expm1(-lr) + lr}


def sequence_estimators(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-completion sums of each estimator over its unmasked tokens: {name: (B,)}."""
    m = mask.float()
    return {k: (v * m).sum(-1) for k, v in per_token_estimators(logp, ref_logp).items()}


def sequence_kl(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Mean over completions of the sequence-level estimators: {"k1": ..., "k2": ..., "k3": ...}."""
    return {k: float(v.mean().item()) for k, v in sequence_estimators(logp, ref_logp, mask).items()}


@torch.no_grad()
def completion_token_logprobs(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                              logits_to_keep: int, temperature: float = 1.0) -> torch.Tensor:
    """log pi(y_t | x, y_<t) for the last `logits_to_keep` tokens of each row, with TRL's temperature scaling.

    Rows are [prompt (left-padded) | completion (right-padded)], exactly as GRPOTrainer lays them out, so a value
    computed here is comparable to what the trainer logs.
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    logits = logits[:, -logits_to_keep - 1:-1, :].float() / temperature
    targets = input_ids[:, -logits_to_keep:]
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
