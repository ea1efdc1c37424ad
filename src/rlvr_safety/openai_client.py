"""The one HTTP client for OpenAI-compatible servers, shared by the `openai` generation backend and the
StrongREJECT judge: the official `openai` package over an httpx2 client configured for untrusted servers.

What every request gets:
- Timeouts: `timeout` seconds for each connect, write and read (the gap between bytes), and a total `deadline`
  in wall-clock seconds for the whole call, retries and backoff included. The deadline is enforced at the
  socket: every read and write waits at most the time left, so a server that trickles a byte at a time or stalls
  cannot stretch a call past it.
- Retries with exponential backoff (`backoff_s * 2**attempt`, at most `max_backoff_s`, or the server's
  Retry-After up to 60 s) on 408, 409, 429, 5xx (not 501), timeouts, refused connections and replies cut short.
  Other HTTP errors fail at once. The openai package's own retries are off: this loop owns them and the deadline.
- No redirects: a 3xx answer is an error naming where it pointed, so the bearer key never travels to a host the
  user did not name. Proxy variables from the environment are not used either.
- The API key is read from the environment variable `api_key_env` for each attempt and sent only as that
  request's Authorization header; it is never stored on an object, logged, or put in an error message: every
  message built here passes through `redact`, which also removes it when the server echoes it back.
- Failures are `ClientError`s with a one-line message; no httpx, http.client or openai exception escapes.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import time
from collections.abc import Iterable
from typing import Any

API_KEY_ENV = "OPENAI_API_KEY"
MAX_RETRY_AFTER_S = 60.0
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("rlvr_safety_http_deadline", default=None)
_BEARER = re.compile(r"(?i)\bbearer\s+\S+")


class ClientError(Exception):
    """A request that failed for good; str() is one line, with any API key redacted."""

    def __init__(self, message: str, *, url: str, status: int | None = None, detail: str = "",
                 tries: int = 1) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.detail = detail
        self.tries = tries


class RequestRejected(ClientError):
    """An HTTP answer not worth repeating: 4xx (401/403: the key), a redirect (`location` says where), 501."""

    def __init__(self, message: str, *, url: str, status: int, detail: str = "", location: str = "") -> None:
        super().__init__(message, url=url, status=status, detail=detail)
        self.location = location


class MalformedReply(ClientError):
    """A 2xx answer whose body is not JSON."""


class RequestFailed(ClientError):
    """Transient failures until the retries or the deadline ran out. `unreachable`: no attempt ever connected."""

    def __init__(self, message: str, *, url: str, detail: str, tries: int, unreachable: bool,
                 deadline_passed: bool) -> None:
        super().__init__(message, url=url, detail=detail, tries=tries)
        self.unreachable = unreachable
        self.deadline_passed = deadline_passed


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` on one line with every secret and any 'Bearer <token>' replaced by '***'."""
    out = _BEARER.sub("Bearer ***", str(text))
    for secret in secrets:
        if secret and len(secret) >= 4:
            out = out.replace(secret, "***")
    return " ".join(out.split())


def display_url(url: str) -> str:
    """The URL without any user:password@ part, for messages."""
    return re.sub(r"^(https?://)[^/@]*@", r"\1", url)


def is_retryable_status(status: int) -> bool:
    return status in (408, 409, 429) or (status >= 500 and status != 501)


def base_of(url: str) -> str:
    """'http://h/v1' from 'http://h/v1', 'http://h/v1/' or 'http://h/v1/chat/completions'."""
    base = url.rstrip("/")
    return base[: -len("/chat/completions")] if base.endswith("/chat/completions") else base


# --- the deadline, enforced at the socket --------------------------------------------------------------------------
def _clamp(timeout: float | None, phase: str) -> float | None:
    """The smaller of `timeout` and the time left before this thread's deadline; raises once it has passed."""
    import httpcore2

    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        error = httpcore2.ConnectTimeout if phase == "connect" else (
            httpcore2.WriteTimeout if phase == "write" else httpcore2.ReadTimeout)
        raise error("total deadline passed")
    return left if timeout is None else min(timeout, left)


def _deadline_backend() -> Any:
    """An httpcore2 network backend whose streams never wait past the calling thread's deadline."""
    import httpcore2

    class Stream(httpcore2.NetworkStream):
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return bytes(self._inner.read(max_bytes, _clamp(timeout, "read")))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._inner.write(buffer, _clamp(timeout, "write"))

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                      timeout: float | None = None) -> Any:
            return Stream(self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout, "connect")))

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class Backend(httpcore2.NetworkBackend):
        def __init__(self) -> None:
            self._inner = httpcore2.SyncBackend()

        def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                        socket_options: Any = None) -> Any:
            return Stream(self._inner.connect_tcp(host, port, _clamp(timeout, "connect"), local_address,
                                                  socket_options))

        def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
            return Stream(self._inner.connect_unix_socket(path, _clamp(timeout, "connect"), socket_options))

        def sleep(self, seconds: float) -> None:
            time.sleep(seconds)

    return Backend()


def _http_client(timeout: float, max_connections: int) -> Any:
    """httpx2 client: no redirects, no proxies from the environment, the deadline-aware connection pool."""
    import httpcore2
    import httpx2

    transport = httpx2.HTTPTransport(trust_env=False)
    # The transport builds its own pool; this one is the same pool with the deadline-aware network backend.
    transport._pool = httpcore2.ConnectionPool(
        ssl_context=httpx2.create_ssl_context(trust_env=False), max_connections=max_connections,
        max_keepalive_connections=max_connections, network_backend=_deadline_backend())
    return httpx2.Client(transport=transport, follow_redirects=False, trust_env=False,
                         timeout=httpx2.Timeout(timeout))


class ChatClient:
    """POST {base}/chat/completions and GET {base}/models on an OpenAI-compatible server (see the module doc)."""

    def __init__(self, base_url: str, *, api_key_env: str = API_KEY_ENV, timeout: float = 60.0,
                 deadline: float = 300.0, retries: int = 3, backoff_s: float = 1.0, max_backoff_s: float = 30.0,
                 max_connections: int = 4) -> None:
        import httpx2
        import openai

        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"{base_url!r} is not an http(s) URL")
        if timeout <= 0 or deadline <= 0:
            raise ValueError("timeout and deadline must be > 0")
        self.base_url = base_of(base_url)
        self.shown_base = display_url(self.base_url)  # for messages: no user:password@
        self.url = self.shown_base + "/chat/completions"
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.deadline = float(deadline)
        self.retries = max(0, int(retries))
        self.backoff_s = max(0.0, float(backoff_s))
        self.max_backoff_s = max_backoff_s
        # The key is not given to the SDK object: each attempt sends it as its own header (see _auth).
        self._sdk = openai.OpenAI(api_key=_no_stored_key, admin_api_key="", base_url=self.base_url, max_retries=0,
                                  timeout=httpx2.Timeout(self.timeout),
                                  http_client=_http_client(self.timeout, max(1, max_connections)))

    def __repr__(self) -> str:
        return f"ChatClient(url={self.url!r}, timeout={self.timeout}, deadline={self.deadline})"

    def close(self) -> None:
        self._sdk.close()

    def _auth(self) -> tuple[dict[str, Any], str | None]:
        import openai

        key = os.environ.get(self.api_key_env) or None
        return ({"Authorization": f"Bearer {key}"} if key else {"Authorization": openai.Omit()}), key

    def chat(self, model: str, messages: list[dict[str, str]], **params: Any) -> Any:
        """The decoded JSON reply of one chat completion (params: max_tokens, temperature, n, seed, ...)."""

        def send(headers: dict[str, Any]) -> Any:
            return self._sdk.chat.completions.with_raw_response.create(
                model=model, messages=messages, extra_headers=headers, extra_body=params)  # type: ignore[arg-type]

        return self._call(send, self.url, decode=True)

    def probe(self) -> int:
        """GET {base}/models: the status of the first HTTP answer (any answer proves the server is there; none is
        retried). Raises RequestFailed when it cannot be reached within the retries and the deadline."""

        def send(headers: dict[str, Any]) -> Any:
            return self._sdk.models.with_raw_response.list(extra_headers=headers, timeout=min(self.timeout, 10.0))

        url = self.shown_base + "/models"
        try:
            self._call(send, url, decode=False, retry_status=False)
        except RequestRejected as err:
            return int(err.status or 0)
        return 200

    def _call(self, send: Any, url: str, *, decode: bool, retry_status: bool = True) -> Any:
        import httpx2
        import openai

        deadline_at = time.monotonic() + self.deadline
        problem, connected, tries, out_of_time = "", False, 0, False
        for attempt in range(self.retries + 1):
            tries = attempt + 1
            headers, key = self._auth()
            delay = min(self.backoff_s * 2**attempt, self.max_backoff_s)
            token = _DEADLINE.set(deadline_at)
            try:
                body = send(headers).http_response.content
            except openai.APIStatusError as err:
                connected = True
                detail = redact(_server_message(err.response), [key])
                if not (retry_status and is_retryable_status(err.status_code)):
                    raise _rejected(url, err.response, err.status_code, detail, key) from None
                problem = f"HTTP {err.status_code}" + (f": {detail}" if detail else "")
                delay = _retry_after(err.response.headers, delay)
            except openai.APITimeoutError as err:  # before APIConnectionError: it is a subclass
                connected = connected or not isinstance(err.__cause__, httpx2.ConnectTimeout)
                out_of_time = time.monotonic() >= deadline_at
                problem = "total deadline passed" if out_of_time else f"no answer within {self.timeout:g} s"
            except openai.APIConnectionError as err:
                cause = err.__cause__
                connected = connected or not isinstance(cause, httpx2.ConnectError)
                if isinstance(cause, httpx2.RemoteProtocolError):
                    problem = redact(f"reply cut short or garbled: {cause}", [key])
                else:
                    problem = redact(f"{type(cause or err).__name__}: {cause or err}", [key])
            except openai.OpenAIError as err:  # e.g. an argument the SDK refuses before sending
                raise ClientError(redact(f"{url}: {type(err).__name__}: {err}", [key]), url=url) from None
            else:
                if not decode:
                    return None
                try:
                    return json.loads(body.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as err:
                    start = redact(body[:80].decode("utf-8", "replace"), [key])
                    raise MalformedReply(f"malformed reply from {url}: not JSON ({err}; it starts {start!r})",
                                         url=url, detail=start) from None
            finally:
                _DEADLINE.reset(token)
            if attempt == self.retries:
                break
            if out_of_time or time.monotonic() + delay >= deadline_at:
                out_of_time = True
                break
            time.sleep(delay)
        message = (f"{url} gave no complete answer within the {self.deadline:g} s deadline ({tries} tries; last: "
                   f"{problem})" if out_of_time else f"{url} failed after {tries} tries ({problem})")
        raise RequestFailed(message, url=url, detail=problem, tries=tries, unreachable=not connected,
                            deadline_passed=out_of_time)


def _rejected(url: str, response: Any, status: int, detail: str, key: str | None) -> RequestRejected:
    if 300 <= status < 400:
        location = redact(display_url(str(response.headers.get("location") or "?")), [key])
        return RequestRejected(
            f"{url} answered with a redirect (HTTP {status} to {location}); redirects are not followed, so the "
            "API key never goes to another host: use the final address", url=url, status=status, detail=detail,
            location=location)
    return RequestRejected(f"{url} rejected the request (HTTP {status}" + (f": {detail})" if detail else ")"),
                           url=url, status=status, detail=detail)


def _no_stored_key() -> str:
    """The SDK's api_key provider. Never called for our requests (each sets its own Authorization header)."""
    return ""


def _server_message(response: Any) -> str:
    """The server's own error message (JSON error.message, error, message, or the text), short."""
    try:
        text = response.text
    except Exception:  # noqa: BLE001 - an unreadable error body is no message
        return ""
    message: Any = None
    try:
        body = json.loads(text)
        if isinstance(body, dict):
            error = body.get("error")
            message = error.get("message") if isinstance(error, dict) else error or body.get("message")
    except ValueError:
        message = text
    return " ".join(str(message).split())[:200] if message else ""


def _retry_after(headers: Any, default: float) -> float:
    value = headers.get("retry-after") if headers is not None else None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S) if value else default
    except ValueError:
        return default
