"""How each generation backend is built from a model spec and options: the factories the registry in base.py
names lazily (an optional backend is imported only when asked for, and fails with an install hint)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Generator


def hf_generator(model_spec: str, **options: Any) -> Generator:
    """In-process transformers model (device/dtype options)."""
    from ..models import resolve_model
    from .hf import HFGenerator

    loaded = resolve_model(model_spec, device=options.get("device"), dtype=options.get("dtype"))
    return HFGenerator(loaded.model, loaded.tokenizer)


def openai_generator(model_spec: str, **options: Any) -> Generator:
    """Any OpenAI-compatible server; the model spec is the server's model name (device/dtype do not apply)."""
    from .openai_backend import OpenAIGenerator

    allowed = ("base_url", "timeout", "deadline", "retries", "backoff_s", "concurrency")
    return OpenAIGenerator(model_spec, **{k: options[k] for k in allowed if options.get(k) is not None})


def vllm_generator(model_spec: str, **options: Any) -> Generator:
    """vLLM (the vllm extra)."""
    from .vllm_backend import VLLMGenerator

    return VLLMGenerator(model_spec, **{k: v for k, v in options.items() if v is not None and k != "device"})
