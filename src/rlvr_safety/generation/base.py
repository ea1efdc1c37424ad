"""The one generation interface every backend (hf in-process, vllm, openai-compatible server) implements."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from ..errors import UserError
from ..registry import Registry

Prompt = str | list[dict[str, str]]  # plain user text, or a chat message list


def chat_messages(prompt: Prompt, system_prompt: str | None = None) -> list[dict[str, str]]:
    """The chat message list for a prompt, with the system prompt first unless the prompt carries its own."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system_prompt and not any(m.get("role") == "system" for m in messages):
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return messages


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from JSON-able parts: equal parts give the same seed, any difference an unrelated one."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings; temperature 0 means greedy. `n` samples per prompt.

    `stream` names the random stream a call draws from: a caller that splits one job into several `generate` calls
    gives each its own (ensure_generations uses the model, benchmark and item ids of the chunk), so no two calls
    share noise while a given `seed` still reproduces. Like batch_size it picks which draw, not the distribution,
    so it is not part of the store key. Neither is `max_padding`: a batch's padded prompt positions (rows x its
    longest prompt) stay within this multiple of its real prompt tokens, so that a few long prompts do not pad a
    whole batch to their length while prompts of similar length still share one (backends that batch by
    themselves, vLLM and HTTP, ignore it); None: batch_size alone.
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0
    batch_size: int = 16
    system_prompt: str | None = None
    stream: str = ""
    max_padding: float | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise UserError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise UserError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.n < 1 or self.batch_size < 1:
            raise UserError("n and batch_size must be >= 1")
        if self.max_padding is not None and self.max_padding < 1:
            raise UserError(f"max_padding must be >= 1 (padded / real prompt positions), got {self.max_padding}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def key(self) -> str:
        """Store key: everything that changes the output distribution (batching and stream only pick the draw)."""
        d = asdict(self)
        for draw_only in ("batch_size", "stream", "max_padding"):
            d.pop(draw_only)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"]
    token_ids: tuple[int, ...] = ()
    # log pi(y_t | x, y_<t) of each token id under the sampler's raw softmax, then log sum_eos pi(eos) if it stopped:
    # what logprobs.completion_logprobs computes, recorded while sampling where that is exact (hf backend, float32
    # weights, temperature 1, top_p 1); None elsewhere
    logprobs: tuple[float, ...] | None = None


class Generator(Protocol):
    backend: str

    def generate(self, prompts: list[Prompt], params: GenerationParams, progress: bool = True) -> list[Completion]:
        """Return len(prompts) * params.n completions, prompt-major (all samples of prompt 0 first)."""
        ...


# backend name -> factory(model_spec, **options), lazily imported from backends.py
GENERATORS: Registry[Callable[..., Generator]] = Registry("generation backend")
GENERATORS.add("hf", "rlvr_safety.generation.backends:hf_generator")
GENERATORS.add("vllm", "rlvr_safety.generation.backends:vllm_generator")
GENERATORS.add("openai", "rlvr_safety.generation.backends:openai_generator")
BACKENDS = tuple(GENERATORS.names())


def get_generator(backend: str, model_spec: str, **options: Any) -> Generator:
    """Construct a backend by name; optional ones fail with an install hint rather than an ImportError."""
    factory = GENERATORS.get(backend)
    return factory(model_spec, **options)
