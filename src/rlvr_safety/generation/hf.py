"""In-process batched generation with transformers.

Throughput on CPU and GPU comes from batching; batching is only correct with left padding and an attention mask,
and only efficient when a batch holds prompts of similar length, so prompts are sorted by token length first and,
with GenerationParams.max_padding, a batch closes before padding would outgrow its real tokens (`length_batches`):
in the demo's eval one 370-token prompt used to pad 63 others of ~60 tokens, 4.6x the prompt tokens.

Samples are drawn by generation/decode.py from exactly the distribution that `logprobs.completion_logprobs`
scores: softmax of the raw logits, tempered and nucleus-cut only as GenerationParams says. Nothing in the model's
own generation_config (repetition penalty, top_k, min_p, no-repeat n-grams, suppressed tokens, ...) is read, and
sampling runs on its own seeded RNG stream, leaving the caller's torch RNG state as it was.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from tqdm.auto import tqdm

from ..progress import report
from .base import Completion, GenerationParams, Prompt, chat_messages, derive_seed
from .decode import decode
from .grad import no_grad


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


@contextmanager
def private_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's CPU generator and `device`'s for the block; the caller's RNG states are restored after it."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


def batch_seed(seed: int, stream: str, batch: int, rows: Sequence[tuple[Sequence[int], int]]) -> int:
    """The seed of one batch: from the params' seed and stream, the batch's position and its (prompt ids, sample
    index) rows, so batches, chunks and calls never share noise while a given seed reproduces."""
    return derive_seed(seed, stream, batch, [[list(ids), s] for ids, s in rows])


def float32_weights(model: Any) -> bool:
    """Whether every weight is float32: where log-probs kept while sampling equal a full forward pass (bf16's
    cached decoding and full forward round apart by ~0.03 nats a token)."""
    return all(p.dtype == torch.float32 for p in model.parameters())


def records_exact_logprobs(model: Any, params: GenerationParams) -> bool:
    """Whether HFGenerator records its samples' log-probs: sampled at temperature 1 and top_p 1 (the law the
    log-probs describe) by float32 weights."""
    return not params.greedy and params.temperature == 1.0 and params.top_p == 1.0 and float32_weights(model)


def length_batches(lengths: Sequence[int], batch_size: int, max_padding: float | None) -> list[list[int]]:
    """Indices of `lengths` in batches, longest first: at most `batch_size` rows, and (with `max_padding`) padded
    positions (rows x the batch's longest) at most `max_padding` x the batch's real positions."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    real = 0
    for i in order:
        batch = batches[-1] if batches else None
        if batch is not None and len(batch) < batch_size and (
                max_padding is None or (len(batch) + 1) * lengths[batch[0]] <= max_padding * (real + lengths[i])):
            batch.append(i)
            real += lengths[i]
        else:
            batches.append([i])
            real = lengths[i]
    return batches


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
        batches = [[jobs[k] for k in b]
                   for b in length_batches([len(encoded[i]) for i, _ in jobs], params.batch_size, params.max_padding)]
        results: dict[tuple[int, int], Completion] = {}
        bar = tqdm(total=len(jobs), desc="generating", unit="seq", disable=not progress, leave=False)
        try:
            for b, batch in enumerate(batches):
                seed = batch_seed(params.seed, params.stream, b, [(encoded[i], s) for i, s in batch])
                outs = self._generate_batch([encoded[i] for i, _ in batch], params, seed=seed)
                for job, out in zip(batch, outs, strict=True):
                    results[job] = out
                bar.update(len(batch))
                report("generating", sum(len(x) for x in batches[:b + 1]), len(jobs))
        finally:
            bar.close()
        return [results[(i, s)] for i in range(len(prompts)) for s in range(params.n)]

    def _generate_batch(self, rows: list[list[int]], params: GenerationParams, seed: int) -> list[Completion]:
        ids, mask = left_pad(rows, self.pad_id, self.device)
        with no_grad(), private_rng(seed, ids.device):
            decoded = decode(self.model, ids, mask, params.max_new_tokens, params.temperature, params.top_p,
                             sorted(self.eos), record=self.record_logprobs(params))
        return [Completion(text=self.tokenizer.decode(d.tokens, skip_special_tokens=True),
                           prompt_tokens=len(prompt_row), completion_tokens=len(d.tokens),
                           finish_reason="stop" if d.stopped else "length", token_ids=tuple(d.tokens),
                           logprobs=None if (lp := d.text_logprobs()) is None else tuple(lp))
                for prompt_row, d in zip(rows, decoded, strict=True)]

    def record_logprobs(self, params: GenerationParams) -> bool:
        return bool(self.eos) and records_exact_logprobs(self.model, params)
