"""In-process batched generation with transformers.

Throughput on CPU and GPU comes from batching; batching is only correct with left padding and an attention mask,
and only efficient when a batch holds prompts of similar length, so prompts are sorted by token length first.
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from .base import Completion, GenerationParams, Prompt, chat_messages


def encode_prompt(tokenizer: Any, prompt: Prompt, system_prompt: str | None = None) -> list[int]:
    """Token ids the model sees: the chat template with the assistant turn opened, or raw text without one."""
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(
            chat_messages(prompt, system_prompt), add_generation_prompt=True, tokenize=True, return_dict=False)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return [int(t) for t in ids]
    text = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
    return [int(t) for t in tokenizer(text, add_special_tokens=True)["input_ids"]]


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return ids


def left_pad(rows: list[list[int]], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    return ids.to(device), mask.to(device)


class HFGenerator:
    backend = "hf"

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos = eos_ids(model, tokenizer)

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def generate(self, prompts: list[Prompt], params: GenerationParams, progress: bool = True) -> list[Completion]:
        encoded = [encode_prompt(self.tokenizer, p, params.system_prompt) for p in prompts]
        jobs = [(i, s) for i in range(len(prompts)) for s in range(params.n)]
        # Longest first: the first batch shows at once whether memory suffices.
        jobs.sort(key=lambda j: -len(encoded[j[0]]))
        results: dict[tuple[int, int], Completion] = {}
        batches = [jobs[k:k + params.batch_size] for k in range(0, len(jobs), params.batch_size)]
        bar = tqdm(total=len(jobs), desc="generating", unit="seq", disable=not progress, leave=False)
        try:
            for b, batch in enumerate(batches):
                outs = self._generate_batch([encoded[i] for i, _ in batch], params, seed=params.seed + b)
                for job, out in zip(batch, outs, strict=True):
                    results[job] = out
                bar.update(len(batch))
        finally:
            bar.close()
        return [results[(i, s)] for i in range(len(prompts)) for s in range(params.n)]

    @torch.inference_mode()
    def _generate_batch(self, rows: list[list[int]], params: GenerationParams, seed: int) -> list[Completion]:
        ids, mask = left_pad(rows, self.pad_id, self.device)
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "pad_token_id": self.pad_id,
                                  "eos_token_id": sorted(self.eos) or None}
        if params.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            torch.manual_seed(seed)
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None)
        out = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        new = out[:, ids.shape[1]:].tolist()
        completions = []
        for prompt_row, tokens in zip(rows, new, strict=True):
            stop = next((k for k, t in enumerate(tokens) if t in self.eos), None)
            kept = tokens if stop is None else tokens[:stop]
            completions.append(Completion(
                text=self.tokenizer.decode(kept, skip_special_tokens=True),
                prompt_tokens=len(prompt_row), completion_tokens=len(kept),
                finish_reason="length" if stop is None else "stop", token_ids=tuple(kept)))
        return completions
