"""In-process generation with vLLM (the `vllm` extra), for GPU throughput well beyond the hf backend.

The mapping mirrors the hf backend, so the two give comparable outputs and store rows:
- chat template via `LLM.chat`, n samples per prompt in prompt-major order;
- one SamplingParams per prompt, seeded from (params.seed, params.stream, the prompt), so prompts never share a
  random stream and a prompt's samples do not depend on what else is in the call; greedy asks for n=1 and repeats
  it (greedy samples are identical, and vLLM rejects n>1 without sampling in some versions);
- the sampling law is GenerationParams' alone: the engine is built with `generation_config="vllm"` unless the
  caller says otherwise, so the model's generation_config.json (repetition penalty, top_k, ...) never applies;
- EOS handling like the hf backend: the stop token is not part of the text, the token ids or the token count;
  finish_reason "length" is kept and every other reason is reported as "stop";
- `close()` frees the engine (del, gc, torch.cuda.empty_cache, vLLM's parallel state) so a judge model can load on
  the same GPU afterwards; the eval runner calls it once every generation is stored.

Tested with a fake `vllm` module (tests/test_generation_vllm.py) that records what the engine and SamplingParams
receive; the real engine needs a GPU (benchmarks/gpu_check.py runs it where one is lent).
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

from ..errors import UserError
from .base import Completion, GenerationParams, Prompt, chat_messages, derive_seed

log = logging.getLogger(__name__)

VLLM_HINT = "the vllm backend needs the vllm extra: pip install 'rlvr-safety[vllm]'"


def prompt_seed(params: GenerationParams, messages: list[dict[str, str]]) -> int:
    """The seed of one prompt's samples: from the params' seed and stream and the prompt itself (vLLM takes a
    signed 64-bit seed; derive_seed gives 63 bits)."""
    return derive_seed(params.seed, params.stream, "vllm", messages)


class VLLMGenerator:
    """Wraps one `vllm.LLM`; `engine_options` go to its constructor (e.g. gpu_memory_utilization, dtype,
    max_model_len, tensor_parallel_size, enforce_eager)."""

    backend = "vllm"
    # vLLM schedules its own batches (continuous batching): hand it many prompts per call, not the hf backend's
    # two batches; ensure_generations commits each call's rows, so a kill loses at most one call's work
    prompts_per_call = 1024

    def __init__(self, model_spec: str, **engine_options: Any) -> None:
        if "base_url" in engine_options:
            raise UserError("--base-url is for --backend openai: a vLLM server (`vllm serve`) speaks the OpenAI API, "
                            "so use --backend openai --base-url http://HOST:PORT/v1; --backend vllm runs vLLM "
                            "in this process")
        try:
            import vllm
        except ImportError as exc:
            raise UserError(VLLM_HINT) from exc
        from ..models import resolve_source

        source = resolve_source(model_spec)
        folder = Path(source)
        if folder.is_dir() and not (folder / "config.json").exists():
            raise UserError(f"{model_spec} is a LoRA adapter; the vllm backend needs a full model: merge the "
                            "adapter into its base first, or use --backend hf")
        self._vllm = vllm
        options = {"generation_config": "vllm", **engine_options}
        self.llm: Any = vllm.LLM(model=source, **options)

    def sampling_params(self, params: GenerationParams, messages: list[dict[str, str]]) -> Any:
        if params.greedy:
            return self._vllm.SamplingParams(n=1, temperature=0.0, max_tokens=params.max_new_tokens)
        return self._vllm.SamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                                         max_tokens=params.max_new_tokens, seed=prompt_seed(params, messages))

    def generate(self, prompts: list[Prompt], params: GenerationParams, progress: bool = True) -> list[Completion]:
        if self.llm is None:
            raise RuntimeError("this vLLM generator was closed")
        conversations = [chat_messages(p, params.system_prompt) for p in prompts]
        sampling = [self.sampling_params(params, c) for c in conversations]
        outputs = self.llm.chat(conversations, sampling, use_tqdm=progress)
        eos = self._eos_ids()
        completions: list[Completion] = []
        for request in outputs:  # vLLM returns requests in input order
            prompt_tokens = len(request.prompt_token_ids or [])
            samples = [self._completion(s, prompt_tokens, eos) for s in sorted(request.outputs, key=lambda o: o.index)]
            if params.greedy:
                samples = samples[:1] * params.n
            completions.extend(samples)
        return completions

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        try:
            tokenizer = self.llm.get_tokenizer()
        except Exception:  # noqa: BLE001 - an engine without a tokenizer (skip_tokenizer_init): nothing to strip
            return ids
        value = getattr(tokenizer, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        return ids

    @staticmethod
    def _completion(sample: Any, prompt_tokens: int, eos: set[int]) -> Completion:
        ids = [int(t) for t in sample.token_ids]
        stopped = sample.finish_reason != "length"
        if stopped and ids and (ids[-1] in eos or getattr(sample, "stop_reason", None) == ids[-1]):
            ids = ids[:-1]  # the stop token ends the text; like the hf backend it is not part of the completion
        return Completion(text=sample.text, prompt_tokens=prompt_tokens, completion_tokens=len(ids),
                          finish_reason="stop" if stopped else "length", token_ids=tuple(ids))

    def close(self) -> None:
        """Free the engine and its GPU memory (idempotent)."""
        if self.llm is None:
            return
        llm, self.llm = self.llm, None
        del llm
        try:  # vLLM keeps a process-wide parallel state; without this its memory is not all released
            from vllm.distributed.parallel_state import (
                destroy_distributed_environment,
                destroy_model_parallel,
            )

            destroy_model_parallel()
            destroy_distributed_environment()
        except (ImportError, AttributeError, RuntimeError, AssertionError) as exc:
            log.debug("vLLM parallel state not torn down: %s", exc)
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
