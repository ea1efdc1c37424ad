"""In-process generation with vLLM (the `vllm` extra), for GPU throughput well beyond the hf backend.

Untested here: vLLM needs a GPU and is not installed in CI, so only the missing-package error is exercised. The
mapping mirrors the hf backend: chat template via `LLM.chat`, n samples per prompt in prompt-major order, token
ids and counts from vLLM's outputs, finish_reason "length" kept and every other reason reported as "stop".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from .base import Completion, GenerationParams, Prompt, chat_messages

VLLM_HINT = "the vllm backend needs the vllm extra: pip install 'rlvr-safety[vllm]'"


class VLLMGenerator:
    """Wraps one `vllm.LLM`; `engine_options` go to its constructor (e.g. gpu_memory_utilization, dtype)."""

    backend = "vllm"

    def __init__(self, model_spec: str, **engine_options: Any) -> None:
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
        self.llm = vllm.LLM(model=source, **engine_options)

    def generate(self, prompts: list[Prompt], params: GenerationParams, progress: bool = True) -> list[Completion]:
        sampling = self._vllm.SamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                                             max_tokens=params.max_new_tokens, seed=params.seed)
        conversations = [chat_messages(p, params.system_prompt) for p in prompts]
        outputs = self.llm.chat(conversations, sampling, use_tqdm=progress)
        completions: list[Completion] = []
        for request in outputs:  # vLLM returns requests in input order
            prompt_tokens = len(request.prompt_token_ids or [])
            for sample in sorted(request.outputs, key=lambda o: o.index):
                ids = tuple(int(t) for t in sample.token_ids)
                completions.append(Completion(
                    text=sample.text, prompt_tokens=prompt_tokens, completion_tokens=len(ids),
                    finish_reason="length" if sample.finish_reason == "length" else "stop", token_ids=ids))
        return completions
