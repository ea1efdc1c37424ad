"""Generation from any OpenAI-compatible server (vLLM serve, llama.cpp, TGI, SGLang, a hosted API).

Requests go through `rlvr_safety.openai_client.ChatClient` (the official openai package, shared with the
StrongREJECT judge): per-read `timeout`, a total `deadline` per prompt request, retries with backoff on 429/5xx and
connection errors, no redirects, the API key read from $OPENAI_API_KEY for each request and never stored, logged
or put in an error message (even when the server echoes it). The server URL must be given (`base_url` or
$OPENAI_BASE_URL): there is deliberately no default, so safety probes are never sent to a hosted API by accident.

What a server reports is mapped onto Completion as follows:
- finish_reason "length" -> "length"; anything else ("stop", "eos", "content_filter", null, ...) -> "stop".
- prompt_tokens comes from usage.prompt_tokens. completion_tokens from usage.completion_tokens only when a reply
  holds a single choice: with n > 1 the server reports one total for all choices, which cannot be split
  honestly, so each choice gets 0, as does every count when the server sends no usage. Counts are bookkeeping
  only; nothing downstream computes with them.
- token_ids is empty: the chat API does not return token ids (log-prob based checks need the hf backend).
A server that ignores `n` and returns fewer choices is asked again for the rest, with the seed moved on.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from ..errors import UserError
from ..openai_client import ChatClient, ClientError, MalformedReply, RequestFailed, RequestRejected
from .base import Completion, GenerationParams, Prompt, chat_messages

API_KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"


class OpenAIGenerator:
    """POST {base_url}/chat/completions per prompt, `concurrency` requests in flight (default 16; a local vLLM
    server takes far more, a hosted API's rate limit may want fewer: 429s are retried with backoff), retrying
    transient failures."""

    backend = "openai"

    def __init__(self, model: str, base_url: str | None = None, *, timeout: float = 120.0,
                 deadline: float = 600.0, retries: int = 4, backoff_s: float = 1.0, concurrency: int = 16) -> None:
        base_url = base_url or os.environ.get(BASE_URL_ENV)
        if not base_url:
            raise UserError(f"the openai backend needs a server URL: pass base_url (e.g. http://localhost:8000/v1) "
                            f"or set ${BASE_URL_ENV}")
        if not base_url.startswith(("http://", "https://")):
            raise UserError(f"openai base_url {base_url!r} is not an http(s) URL; pass e.g. http://localhost:8000/v1")
        if timeout <= 0 or deadline <= 0:
            raise UserError(f"openai backend: timeout and deadline must be > 0 seconds (got {timeout}, {deadline})")
        self.model = model
        self.concurrency = max(1, concurrency)
        self.client = ChatClient(base_url, api_key_env=API_KEY_ENV, timeout=timeout, deadline=deadline,
                                 retries=retries, backoff_s=backoff_s, max_connections=self.concurrency)
        self.url = self.client.url

    @property
    def prompts_per_call(self) -> int:
        """Prompts ensure_generations hands over per call: enough to keep every connection busy for a while."""
        return max(64, 8 * self.concurrency)

    def __repr__(self) -> str:
        return f"OpenAIGenerator(model={self.model!r}, url={self.url!r})"

    def generate(self, prompts: list[Prompt], params: GenerationParams, progress: bool = True) -> list[Completion]:
        """len(prompts) * n completions, prompt-major; the first request that fails for good stops the rest."""
        from tqdm.auto import tqdm

        results: list[list[Completion] | None] = [None] * len(prompts)
        bar = tqdm(total=len(prompts), desc="generating", unit="prompt", disable=not progress, leave=False)
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(prompts))))
        try:
            futures = {pool.submit(self._samples, p, params): i for i, p in enumerate(prompts)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    results[futures[future]] = future.result()  # re-raises the first failure
                    bar.update(1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
        return [c for per_prompt in results if per_prompt is not None for c in per_prompt]

    def _samples(self, prompt: Prompt, params: GenerationParams) -> list[Completion]:
        messages = chat_messages(prompt, params.system_prompt)
        out: list[Completion] = []
        while len(out) < params.n:
            got = self._request(messages, params, n=params.n - len(out), seed=params.seed + len(out))
            if not got:
                raise UserError(f"malformed reply from {self.url}: no choices")
            out.extend(got[: params.n - len(out)])
        return out

    def _request(self, messages: list[dict[str, str]], params: GenerationParams, n: int,
                 seed: int) -> list[Completion]:
        try:
            payload = self.client.chat(self.model, messages, max_tokens=params.max_new_tokens,
                                       temperature=params.temperature, top_p=params.top_p, n=n, seed=seed)
        except ClientError as err:
            raise self._user_error(err) from None
        return parse_reply(payload, self.url)

    def _user_error(self, err: ClientError) -> UserError:
        """The client's failure as one line that says what to fix."""
        if isinstance(err, RequestRejected):
            detail = f": {err.detail}" if err.detail else ""
            if err.status in (401, 403):
                return UserError(f"{self.url} refused the request (HTTP {err.status}{detail}); "
                                 f"set ${API_KEY_ENV} to a valid key")
            if err.status is not None and 300 <= err.status < 400:
                return UserError(f"{err}; pass that as base_url")
            return UserError(f"{self.url} rejected the request (HTTP {err.status}{detail}); check the model name "
                             f"{self.model!r} and the generation settings")
        if isinstance(err, MalformedReply):
            return UserError(f"{err}; is this an OpenAI-compatible server?")
        if isinstance(err, RequestFailed) and err.deadline_passed:
            return UserError(f"generation server at {self.url} gave no complete answer within the "
                             f"{self.client.deadline:g} s deadline ({err.tries} tries; last: {err.detail}); check "
                             "the server's load or raise the deadline")
        if isinstance(err, RequestFailed):
            return UserError(f"generation server unreachable at {self.url} after {err.tries} tries ({err.detail}); "
                             f"start the server or point base_url / ${BASE_URL_ENV} at a running one")
        return UserError(str(err))


def parse_reply(payload: Any, url: str) -> list[Completion]:
    """Choices in index order as Completions (see the module docstring for how counts and reasons map)."""
    try:
        choices = sorted(payload["choices"], key=lambda c: int(c.get("index", 0)))
        usage = payload.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        total = int(usage.get("completion_tokens") or 0)
        out = []
        for choice in choices:
            content = choice["message"].get("content")
            if content is not None and not isinstance(content, str):
                raise TypeError("message.content is not a string")
            out.append(Completion(
                text=content or "", prompt_tokens=prompt_tokens,
                completion_tokens=total if len(choices) == 1 else 0,
                finish_reason="length" if choice.get("finish_reason") == "length" else "stop"))
        return out
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
        raise UserError(f"malformed reply from {url}: {type(err).__name__}: {err}") from None
