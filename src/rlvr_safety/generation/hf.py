"""In-process batched generation with transformers.

Throughput on CPU and GPU comes from batching; batching is only correct with left padding and an attention mask,
and only efficient when a batch holds prompts of similar length, so prompts are sorted by token length first and,
with GenerationParams.batch_tokens, a batch of long prompts holds fewer rows (`token_batches`): in the demo's eval
one 370-token prompt used to pad 63 others of ~60 tokens, 4.6x the prompt tokens in padding.

Samples are drawn from exactly the distribution that `logprobs.completion_logprobs` scores: softmax of the raw
logits, tempered and nucleus-cut only as GenerationParams says. Nothing in the model's own generation_config
(repetition penalty, top_k, min_p, no-repeat n-grams, suppressed tokens, ...) is applied, and sampling runs on
its own seeded RNG stream, leaving the caller's torch RNG state as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig

from ..progress import report
from .base import Completion, GenerationParams, Prompt, chat_messages, derive_seed
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


def sampling_config(params: GenerationParams, eos: Sequence[int], pad_id: int | None,
                    bos_id: int | None = None) -> GenerationConfig:
    """A generation config built from `params` alone, every option that changes the next-token law set neutral.

    transformers (5.x) fills each field a passed config leaves None from the model's generation_config, then from
    its global defaults (top_k=50), so None is not neutral: the options with a neutral value are set to it here
    (top_k=0, repetition_penalty=1, ...). Options whose only neutral value is None (min_p, bad_words_ids,
    suppress_tokens, forced ids, sequence_bias, ...) are kept out by `only_config`, which hides the model's config.
    """
    options: dict[str, Any] = dict(
        max_new_tokens=params.max_new_tokens, min_length=0, num_beams=1, num_return_sequences=1,
        repetition_penalty=1.0, encoder_repetition_penalty=1.0, no_repeat_ngram_size=0,
        encoder_no_repeat_ngram_size=0, renormalize_logits=False, remove_invalid_values=False,
        return_dict_in_generate=False, output_scores=False, output_logits=False,
        eos_token_id=list(eos) or None, pad_token_id=pad_id, bos_token_id=bos_id)
    if params.greedy:
        options.update(do_sample=False)
    else:
        options.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0, typical_p=1.0,
                       epsilon_cutoff=0.0, eta_cutoff=0.0)
    return GenerationConfig(**options)


@contextmanager
def only_config(model: Any, config: GenerationConfig) -> Iterator[None]:
    """Within the block every generation_config the model (and any wrapped model, e.g. under a PEFT adapter)
    holds is a copy of `config`, so nothing of the model's own settings can be merged into a generate call."""
    modules = model.modules() if hasattr(model, "modules") else [model]
    holders = [m for m in modules if isinstance(getattr(m, "__dict__", {}).get("generation_config"), GenerationConfig)]
    saved = [m.generation_config for m in holders]
    try:
        for m in holders:
            m.generation_config = copy.deepcopy(config)
        yield
    finally:
        for m, original in zip(holders, saved, strict=True):
            m.generation_config = original


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


def token_batches(lengths: Sequence[int], batch_size: int, batch_tokens: int | None,
                  max_new_tokens: int) -> list[list[int]]:
    """Indices of `lengths` in batches, longest first: at most `batch_size` rows, and at most `batch_tokens` padded
    positions (rows x (longest prompt + max_new_tokens)) per batch; a row longer than the budget goes alone."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        batch = batches[-1] if batches else None
        if batch is not None and len(batch) < batch_size and (
                batch_tokens is None or (len(batch) + 1) * (lengths[batch[0]] + max_new_tokens) <= batch_tokens):
            batch.append(i)
        else:
            batches.append([i])
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
        batches = [[jobs[k] for k in b] for b in token_batches([len(encoded[i]) for i, _ in jobs], params.batch_size,
                                                                  params.batch_tokens, params.max_new_tokens)]
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
        bos = getattr(getattr(self.model, "generation_config", None), "bos_token_id", None)
        config = sampling_config(params, sorted(self.eos), self.pad_id, bos if isinstance(bos, int) else None)
        with no_grad(), private_rng(seed, ids.device), only_config(self.model, config):
            out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
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
