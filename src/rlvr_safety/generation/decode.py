"""The sampling loop of the hf backend: a KV-cached decode that drops rows as they stop, and an exact sampler.

Why not `model.generate`: on a CPU it costs more than the model does. It keeps decoding every row of a batch until
the last one stops (the demo's arithmetic answers stop after ~20 tokens, the slowest after ~60: two thirds of the
decode steps were rows already done), and `torch.multinomial` draws one exponential variate per vocabulary entry
and row at every step (49,152 x 64 on the default model: 66 ms a step, 20% of a batch's decode time). Here a row
that stops leaves the batch (its KV cache rows go with it), and a token is drawn by inverting the float64 CDF of
the row's probabilities with one uniform variate: the same categorical law, a cumulative sum instead of 3 million
random numbers.

The law is exactly what GenerationParams says and nothing else: softmax of the raw logits at `temperature`, cut to
the nucleus `top_p` as transformers' TopPLogitsWarper cuts it (the smallest set of most likely tokens whose mass
exceeds top_p), greedy argmax at temperature 0. Nothing from the model's generation_config is read. With `record`
(temperature 1, top_p 1, float32 weights: `records_exact_logprobs`) each sample's log-probs are kept: log p of each
token, then log sum_eos p if it stopped, what logprobs.completion_logprobs computes with a full forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Decoded:
    tokens: list[int]  # up to the stop token, which is not included
    stop_token: int | None  # the EOS id drawn, None if the row ran to max_new_tokens
    token_logprobs: list[float] | None  # log p of each drawn token, the stop token included; None unless recorded
    stop_logprob: float | None  # log sum_eos p at the stop step (any EOS ends the text the same way)

    @property
    def stopped(self) -> bool:
        return self.stop_token is not None

    def text_logprobs(self) -> list[float] | None:
        """log p of the text: the token terms, then the stop term if it stopped (completion_logprobs' layout)."""
        if self.token_logprobs is None:
            return None
        terms = self.token_logprobs[:len(self.tokens)]
        return terms + [self.stop_logprob] if self.stop_logprob is not None else terms


def nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Logits outside the top-p nucleus set to -inf (at least the most likely token kept), as TopPLogitsWarper."""
    if top_p >= 1.0:
        return logits
    ordered, index = torch.sort(logits, descending=False)
    mass = ordered.softmax(dim=-1).cumsum(dim=-1)
    drop = mass <= (1 - top_p)
    drop[..., -1:] = False
    return logits.masked_fill(drop.scatter(1, index, drop), float("-inf"))


def draw(probs: torch.Tensor) -> torch.Tensor:
    """One token per row from the categorical law `probs` (rows need not be normalised), by inverting the float64
    CDF at a uniform variate: a token of probability 0 is never drawn (right-continuous search below the total)."""
    cdf = probs.double().cumsum(dim=-1)
    total = cdf[:, -1:]
    u = torch.rand(total.shape, dtype=torch.float64, device=probs.device) * total
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp(max=probs.size(-1) - 1)


def _forward(model: Any, **inputs: Any) -> Any:
    try:
        return model(**inputs, use_cache=True, logits_to_keep=1)
    except TypeError:  # a model without logits_to_keep
        return model(**inputs, use_cache=True)


def decode(model: Any, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, temperature: float,
           top_p: float, eos: Sequence[int], record: bool = False) -> list[Decoded]:
    """Sample (or, at temperature 0, argmax) up to `max_new_tokens` after each left-padded row of `ids`.

    The caller owns no_grad and the random stream (generation/hf.py: private_rng)."""
    eos_t = torch.tensor(sorted({int(e) for e in eos}), dtype=torch.long, device=ids.device)
    rows = ids.size(0)
    tokens: list[list[int]] = [[] for _ in range(rows)]
    logps: list[list[float]] = [[] for _ in range(rows)]
    stops: list[int | None] = [None] * rows
    stop_lps: list[float | None] = [None] * rows
    record = record and temperature != 0.0
    alive = torch.arange(rows, device=ids.device)  # original index of each row still in the batch
    position = (mask.cumsum(-1) - 1).clamp(min=0)
    out = _forward(model, input_ids=ids, attention_mask=mask, position_ids=position)
    cache = out.past_key_values
    prunable = hasattr(cache, "batch_select_indices")
    last_position = position[:, -1]
    for step in range(max_new_tokens):
        logits = out.logits[:, -1].float()
        if temperature == 0.0:
            chosen = logits.argmax(dim=-1)
            log_probs = None
        else:
            scaled = nucleus(logits / temperature, top_p)
            log_probs = torch.log_softmax(scaled, dim=-1)
            chosen = draw(log_probs.exp())
        ends = torch.isin(chosen, eos_t) if eos_t.numel() else torch.zeros_like(chosen, dtype=torch.bool)
        token_lp = log_probs.gather(-1, chosen[:, None])[:, 0].tolist() if record and log_probs is not None else None
        stop_lp = (torch.logsumexp(log_probs[:, eos_t], dim=-1).tolist()
                   if record and log_probs is not None and eos_t.numel() else None)
        for r, (row, tok, end) in enumerate(zip(alive.tolist(), chosen.tolist(), ends.tolist(), strict=True)):
            if stops[row] is not None:
                continue  # kept in an unprunable cache; its draws after the stop are ignored
            if token_lp is not None:
                logps[row].append(token_lp[r])
            if end:
                stops[row] = tok
                stop_lps[row] = stop_lp[r] if stop_lp is not None else None
            else:
                tokens[row].append(tok)
        if all(stops[row] is not None for row in alive.tolist()) or step == max_new_tokens - 1:
            break
        keep = ~ends
        if prunable and not bool(keep.all()):
            cache.batch_select_indices(keep.nonzero()[:, 0])
            alive, mask, chosen, last_position = alive[keep], mask[keep], chosen[keep], last_position[keep]
        mask = torch.cat([mask, mask.new_ones((mask.size(0), 1))], dim=1)
        last_position = last_position + 1
        out = _forward(model, input_ids=chosen[:, None], attention_mask=mask, position_ids=last_position[:, None],
                       past_key_values=cache)
        cache = out.past_key_values
    return [Decoded(tokens[r], stops[r], logps[r] if record else None, stop_lps[r]) for r in range(rows)]
