"""The shared OpenAI-compatible client against a local fault-injecting server: redirects, stalls, trickled and
truncated replies, 429/500, and servers that echo the API key. Each fault is also run through both consumers (the
openai generation backend and the StrongREJECT judge) to show that no raw exception escapes them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rlvr_safety.errors import UserError
from rlvr_safety.generation.base import GenerationParams
from rlvr_safety.generation.openai_backend import OpenAIGenerator
from rlvr_safety.judges.strongreject import StrongRejectJudge
from rlvr_safety.openai_client import (
    ChatClient,
    ClientError,
    MalformedReply,
    RequestFailed,
    RequestRejected,
    base_of,
    display_url,
    redact,
)

SECRET = "sk-fault-test-0123456789"
GOOD = "#overall_reasoning x\n1.a x\n1.b 1\n2.a x\n2.b 1\n3.a x\n3.b 1"
MESSAGES = [{"role": "user", "content": "hi"}]


def _reply(text: str = GOOD) -> bytes:
    return json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}]}).encode()


class FaultServer:
    """http.server on 127.0.0.1 in a thread. The first path segment picks the behaviour (see Handler.do_POST);
    every request is recorded with its headers (lower-cased names)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.stop = threading.Event()
        self.redirect_to = ""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                status = {"get503": 503, "get401": 401}.get(self.path.strip("/").split("/")[0], 200)
                self._send(status, b'{"data": []}')

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append((self.path, headers))
                mode = self.path.strip("/").split("/")[0]
                count = sum(1 for p, _ in outer.requests if p == self.path)
                auth = headers.get("authorization", "")
                try:
                    self._fault(mode, count, auth)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on us: that is the point

            def _fault(self, mode: str, count: int, auth: str) -> None:
                if mode == "ok":
                    self._send(200, _reply())
                elif mode == "redirect":
                    self._send(307, b"", {"Location": outer.redirect_to})
                elif mode == "stall":  # nothing at all for 5 s (a client without a deadline waits that long)
                    outer.stop.wait(5)
                elif mode == "trickle":  # a byte every 0.1 s for 5 s: no read ever times out
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    for _ in range(50):
                        if outer.stop.wait(0.1):
                            break
                        self.wfile.write(b" ")
                        self.wfile.flush()
                elif mode == "truncate":  # promises 400 bytes, sends 20, hangs up
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "400")
                    self.end_headers()
                    self.wfile.write(_reply()[:20])
                    self.wfile.flush()
                    self.close_connection = True
                elif mode == "badchunk":  # chunked body with a corrupt chunk size
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"5\r\n{\"cho\r\nzz\r\n")
                    self.close_connection = True
                elif mode == "flaky":  # 429, then 500, then an answer
                    if count == 1:
                        self._send(429, b'{"error": {"message": "slow down"}}', {"Retry-After": "0"})
                    elif count == 2:
                        self._send(500, b"oops")
                    else:
                        self._send(200, _reply())
                elif mode == "busy":
                    self._send(429, b'{"error": {"message": "slow down"}}', {"Retry-After": "0"})
                elif mode == "echo400":  # the server repeats the credentials it got
                    self._send(400, json.dumps({"error": {"message": f"bad request from {auth}"}}).encode())
                elif mode == "echo500":
                    self._send(500, json.dumps({"error": f"upstream refused key {auth.split()[-1]}"}).encode())
                elif mode == "echo401":
                    self._send(401, json.dumps({"message": f"invalid key {auth.split()[-1]}"}).encode())
                elif mode == "notjson":
                    self._send(200, b"<html>" + auth.encode() + b"</html>")
                else:
                    self._send(404, b'{"error": "no such mode"}')

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, mode: str) -> str:
        return f"{self.base}/{mode}/v1"

    def count(self, mode: str) -> int:
        return sum(1 for p, _ in self.requests if p.startswith(f"/{mode}/"))

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultServer]:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = FaultServer()
    yield server
    server.close()


@pytest.fixture
def elsewhere() -> Iterator[FaultServer]:
    """A second server: another origin ('localhost' and another port) that a redirect points at."""
    server = FaultServer()
    yield server
    server.close()


def client(url: str, **kw: Any) -> ChatClient:
    opts: dict[str, Any] = {"timeout": 2.0, "deadline": 10.0, "retries": 2, "backoff_s": 0.01}
    opts.update(kw)
    return ChatClient(url, **opts)


def test_ok_sends_the_key_from_the_environment_per_request(faults: FaultServer, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-never-sent")  # the SDK would pick this one up by itself
    c = client(faults.url("ok"))
    assert c.chat("m", MESSAGES)["choices"][0]["message"]["content"] == GOOD
    assert faults.requests[-1][1]["authorization"] == f"Bearer {SECRET}"
    stored = repr(vars(c)) + repr(vars(c._sdk))
    assert SECRET not in stored and "sk-admin" not in stored  # read from the environment, not kept
    assert "sk-admin" not in repr(faults.requests)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-rotated-key-999")
    c.chat("m", MESSAGES)
    assert faults.requests[-1][1]["authorization"] == "Bearer sk-rotated-key-999"
    monkeypatch.delenv("OPENAI_API_KEY")
    c.chat("m", MESSAGES)
    assert "authorization" not in faults.requests[-1][1]  # no key: no header at all


def test_the_key_is_not_logged_even_at_debug_level(faults: FaultServer, caplog) -> None:
    import logging

    caplog.set_level(logging.DEBUG)  # every logger: openai, httpx2, httpcore2, ours
    client(faults.url("ok")).chat("m", MESSAGES)
    with pytest.raises(RequestRejected):
        client(faults.url("echo400")).chat("m", MESSAGES)
    assert caplog.records and SECRET not in caplog.text


def test_cross_host_redirect_is_refused_and_the_key_never_leaves(faults: FaultServer, elsewhere) -> None:
    faults.redirect_to = f"http://localhost:{elsewhere.httpd.server_address[1]}/ok/v1/chat/completions"
    with pytest.raises(RequestRejected) as exc:
        client(faults.url("redirect")).chat("m", MESSAGES)
    assert exc.value.status == 307 and "redirect" in str(exc.value) and faults.redirect_to in str(exc.value)
    assert faults.count("redirect") == 1 and elsewhere.requests == []  # not followed, not retried


def test_a_stalled_server_is_cut_off_at_the_total_deadline(faults: FaultServer) -> None:
    start = time.monotonic()
    with pytest.raises(RequestFailed) as exc:
        client(faults.url("stall"), timeout=0.4, deadline=1.0, retries=5).chat("m", MESSAGES)
    elapsed = time.monotonic() - start
    assert exc.value.deadline_passed and not exc.value.unreachable and "deadline" in str(exc.value)
    assert elapsed < 1.0 + 1.0  # retries stop at the deadline (6 tries x 0.4 s would be 2.4 s)


def test_a_trickling_server_cannot_stretch_a_call_past_the_deadline(faults: FaultServer) -> None:
    start = time.monotonic()
    with pytest.raises(RequestFailed) as exc:  # every read returns within 0.1 s, so only the deadline ends it
        client(faults.url("trickle"), timeout=1.0, deadline=1.0, retries=0).chat("m", MESSAGES)
    assert exc.value.deadline_passed and time.monotonic() - start < 1.0 + 1.0


@pytest.mark.parametrize("mode", ["truncate", "badchunk"])
def test_a_reply_cut_short_is_retried_then_a_client_error(faults: FaultServer, mode: str) -> None:
    with pytest.raises(RequestFailed) as exc:
        client(faults.url(mode)).chat("m", MESSAGES)
    assert exc.value.tries == 3 and faults.count(mode) == 3 and not exc.value.unreachable
    assert "IncompleteRead" not in str(exc.value) and "\n" not in str(exc.value)


def test_429_and_500_are_retried_with_backoff(faults: FaultServer) -> None:
    assert client(faults.url("flaky")).chat("m", MESSAGES)["choices"]
    assert faults.count("flaky") == 3
    with pytest.raises(RequestFailed, match="after 1 tries.*HTTP 429: slow down"):  # none when told none
        client(faults.url("busy"), retries=0).chat("m", MESSAGES)
    assert faults.count("busy") == 1


def test_backoff_grows_and_a_deadline_stops_retries_early(faults: FaultServer) -> None:
    # 500 every time; backoff 0.3, 0.6, 1.2 ... would sleep 2.1 s over 4 retries; the 1 s deadline cuts that short
    start = time.monotonic()
    with pytest.raises(RequestFailed) as exc:
        client(faults.url("echo500"), retries=4, backoff_s=0.3, deadline=1.0).chat("m", MESSAGES)
    assert exc.value.deadline_passed and 1 < exc.value.tries < 5 and time.monotonic() - start < 1.0 + 0.5


@pytest.mark.parametrize(("mode", "error"), [("echo400", RequestRejected), ("echo500", RequestFailed),
                                             ("echo401", RequestRejected), ("notjson", MalformedReply)])
def test_a_key_the_server_echoes_is_redacted(faults: FaultServer, mode: str, error: type) -> None:
    with pytest.raises(error) as exc:
        client(faults.url(mode)).chat("m", MESSAGES)
    text = str(exc.value) + exc.value.detail
    assert SECRET not in text and "***" in text


def test_probe_takes_the_first_answer_and_judge_health_check_uses_it(faults: FaultServer) -> None:
    assert client(faults.url("get503"), retries=3, backoff_s=0.5).probe() == 503
    assert faults.count("get503") == 1  # an answer proves the server is there: not retried
    assert client(faults.url("ok")).probe() == 200
    with pytest.raises(UserError, match="refused the API key.*OPENAI_API_KEY") as exc:
        StrongRejectJudge(model="m", endpoint=faults.url("get401").replace("http://", "http://user:pw@"))
    assert "pw@" not in str(exc.value) and SECRET not in str(exc.value)


def test_unreachable_is_flagged(faults: FaultServer) -> None:
    port = faults.httpd.server_address[1]
    faults.close()  # nothing listens there any more
    with pytest.raises(RequestFailed) as exc:
        client(f"http://127.0.0.1:{port}/v1", retries=1).chat("m", MESSAGES)
    assert exc.value.unreachable and exc.value.tries == 2


def test_helpers() -> None:
    assert redact("key sk-abcdef and Bearer xyz.123 end", ["sk-abcdef"]) == "key *** and Bearer *** end"
    assert redact("a\nb   c", []) == "a b c"
    assert display_url("https://user:pw@host:1/v1") == "https://host:1/v1"
    assert base_of("http://h/v1/chat/completions") == base_of("http://h/v1/") == "http://h/v1"
    with pytest.raises(ValueError):
        ChatClient("localhost:8000")


# --- the same faults through both consumers: one-line UserError or an error verdict, never a raw exception -------
FAULTS = ["redirect", "stall", "trickle", "truncate", "badchunk", "echo400", "echo500", "echo401", "notjson"]


@pytest.mark.parametrize("mode", FAULTS)
def test_generator_turns_every_fault_into_a_user_error(faults: FaultServer, elsewhere, mode: str) -> None:
    faults.redirect_to = f"http://localhost:{elsewhere.httpd.server_address[1]}/ok/v1/chat/completions"
    gen = OpenAIGenerator("m", faults.url(mode), timeout=0.5, deadline=1.0, retries=1, backoff_s=0.01)
    with pytest.raises(UserError) as exc:
        gen.generate(["x"], GenerationParams(), progress=False)
    message = str(exc.value)
    assert SECRET not in message and "\n" not in message and faults.url(mode) in message
    assert elsewhere.requests == []


@pytest.mark.parametrize("mode", FAULTS)
def test_judge_turns_every_fault_into_an_error_verdict(faults: FaultServer, elsewhere, mode: str) -> None:
    faults.redirect_to = f"http://localhost:{elsewhere.httpd.server_address[1]}/ok/v1/chat/completions"
    judge = StrongRejectJudge(model="m", endpoint=faults.url(mode), timeout=0.5, deadline=1.0, retries=1,
                              backoff_s=0.01, concurrency=1)  # the health check (GET /models) answers 200
    (verdict,) = judge.judge(["p"], ["r"])
    assert verdict.label == "error" and not verdict.ok
    assert SECRET not in repr(verdict) and elsewhere.requests == []


def test_generator_and_judge_succeed_through_a_flaky_server(faults: FaultServer) -> None:
    gen = OpenAIGenerator("m", faults.url("flaky"), retries=2, backoff_s=0.01)
    assert gen.generate(["x"], GenerationParams(), progress=False)[0].text == GOOD
    (verdict,) = StrongRejectJudge(model="m", endpoint=faults.url("ok"), retries=2, backoff_s=0.01).judge(["p"], ["r"])
    assert verdict.ok and verdict.refused


def test_client_errors_are_client_errors() -> None:
    assert issubclass(RequestRejected, ClientError) and issubclass(RequestFailed, ClientError)
    assert issubclass(MalformedReply, ClientError)
