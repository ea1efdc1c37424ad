"""Per-token log-probabilities of given completions under a model: the raw material for KL and the certificate."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .grad import no_grad


def completion_logprobs(model: Any, prompt_ids: list[list[int]], completion_ids: list[list[int]],
                        pad_id: int, batch_size: int = 8) -> list[np.ndarray]:
    """log p(y_t | x, y_<t) for each completion token, one float64 array per sequence.

    Right padding is used here (no generation), so positions are the natural ones; completions of length 0 give an
    empty array (sequence log-ratio 0).
    """
    if len(prompt_ids) != len(completion_ids):
        raise ValueError("prompt_ids and completion_ids must have the same length")
    with no_grad():
        return _completion_logprobs(model, prompt_ids, completion_ids, pad_id, batch_size)


def _completion_logprobs(model: Any, prompt_ids: list[list[int]], completion_ids: list[list[int]],
                         pad_id: int, batch_size: int) -> list[np.ndarray]:
    device = next(model.parameters()).device
    out: list[np.ndarray] = [np.zeros(0)] * len(prompt_ids)
    order = sorted(range(len(prompt_ids)), key=lambda i: -(len(prompt_ids[i]) + len(completion_ids[i])))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        seqs = [list(prompt_ids[i]) + list(completion_ids[i]) for i in idx]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s, dtype=torch.long)
            mask[r, :len(s)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        targets = ids[:, 1:].to(device)
        token_lp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu().double().numpy()
        for r, i in enumerate(idx):
            p, c = len(prompt_ids[i]), len(completion_ids[i])
            out[i] = token_lp[r, p - 1:p - 1 + c].copy()
    return out
