"""Generation from any OpenAI-compatible server (vLLM serve, llama.cpp, TGI, SGLang, a hosted API).

Uses urllib only, so the backend costs no dependency. The server URL must be given (`base_url` or
$OPENAI_BASE_URL): there is deliberately no default, so safety probes are never sent to a hosted API by accident.
The API key is read from $OPENAI_API_KEY for each request and is never stored on the object, logged or put in
an error message.

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

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from ..errors import UserError
from .base import Completion, GenerationParams, Prompt, chat_messages

API_KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0


def chat_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


class OpenAIGenerator:
    """POST {base_url}/chat/completions per prompt, a few prompts at a time, retrying transient failures."""

    backend = "openai"

    def __init__(self, model: str, base_url: str | None = None, *, timeout: float = 120.0, retries: int = 4,
                 backoff_s: float = 1.0, concurrency: int = 4) -> None:
        base_url = base_url or os.environ.get(BASE_URL_ENV)
        if not base_url:
            raise UserError(f"the openai backend needs a server URL: pass base_url (e.g. http://localhost:8000/v1) "
                            f"or set ${BASE_URL_ENV}")
        if not base_url.startswith(("http://", "https://")):
            raise UserError(f"openai base_url {base_url!r} is not an http(s) URL; pass e.g. http://localhost:8000/v1")
        self.model = model
        self.url = chat_url(base_url)
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.concurrency = max(1, concurrency)

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
        body = {"model": self.model, "messages": messages, "max_tokens": params.max_new_tokens,
                "temperature": params.temperature, "top_p": params.top_p, "n": n, "seed": seed}
        return parse_reply(self.post(body), self.url)

    def post(self, body: dict[str, Any]) -> Any:
        """POST JSON and decode the JSON reply; 429, 5xx, timeouts and connection errors are retried with
        exponential backoff (or the server's Retry-After), other HTTP errors fail at once."""
        data = json.dumps(body).encode()
        problem = ""
        for attempt in range(self.retries + 1):
            delay = self.backoff_s * 2 ** attempt
            try:
                request = urllib.request.Request(self.url, data=data, headers=self._headers(), method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    raw = reply.read()
            except urllib.error.HTTPError as err:
                detail = _error_detail(err)
                if err.code in (401, 403):
                    raise UserError(f"{self.url} refused the request (HTTP {err.code}{detail}); "
                                    f"set ${API_KEY_ENV} to a valid key") from None
                if err.code not in RETRY_STATUS:
                    raise UserError(f"{self.url} rejected the request (HTTP {err.code}{detail}); check the model "
                                    f"name {self.model!r} and the generation settings") from None
                problem = f"HTTP {err.code}{detail}"
                delay = _retry_after(err, delay)
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                problem = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
            else:
                try:
                    return json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as err:
                    raise UserError(f"malformed reply from {self.url}: not JSON ({err}); is this an "
                                    "OpenAI-compatible server?") from None
            if attempt < self.retries:
                time.sleep(delay)
        raise UserError(f"generation server unreachable at {self.url} after {self.retries + 1} tries ({problem}); "
                        f"start the server or point base_url / ${BASE_URL_ENV} at a running one")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(API_KEY_ENV)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers


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


def _error_detail(err: urllib.error.HTTPError) -> str:
    """The server's own error message, short, for the one-line UserError."""
    try:
        body = json.loads(err.read().decode("utf-8", "replace"))
        message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else body.get("error")
    except (ValueError, AttributeError, OSError):
        message = None
    return f": {' '.join(str(message).split())[:200]}" if message else ""


def _retry_after(err: urllib.error.HTTPError, default: float) -> float:
    value = err.headers.get("Retry-After") if err.headers else None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S) if value else default
    except ValueError:
        return default
