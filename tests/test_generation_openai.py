"""The OpenAI-compatible backend against a local http.server with canned replies; the vllm backend's install hint."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rlvr_safety.errors import UserError
from rlvr_safety.generation.base import GenerationParams, get_generator
from rlvr_safety.generation.openai_backend import OpenAIGenerator

SECRET = "sk-test-do-not-leak"
Reply = tuple[int, dict[str, str], bytes]


def chat_reply(texts: list[str], finish: list[str] | None = None, usage: dict | None = None,
               order: list[int] | None = None) -> Reply:
    choices = [{"index": i, "message": {"role": "assistant", "content": t},
                "finish_reason": (finish or ["stop"] * len(texts))[i]} for i, t in enumerate(texts)]
    if order:
        choices = [choices[i] for i in order]
    payload = {"id": "x", "object": "chat.completion", "choices": choices}
    if usage is not None:
        payload["usage"] = usage
    return 200, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def echo(body: dict, _: int) -> Reply:
    """One choice per requested sample: '<last user message> #<seed + i>'; slow for prompt 'p0'."""
    prompt = body["messages"][-1]["content"]
    if prompt == "p0":
        time.sleep(0.3)  # answered last, so order must come from the backend, not the server
    texts = [f"{prompt} #{body['seed'] + i}" for i in range(body["n"])]
    return chat_reply(texts, ["length"] + ["stop"] * (len(texts) - 1), {"prompt_tokens": 5, "completion_tokens": 7})


class FakeServer:
    def __init__(self, respond: Callable[[dict, int], Reply]) -> None:
        self.respond = respond
        self.requests: list[tuple[dict, dict[str, str]]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append((body, {k.lower(): v for k, v in self.headers.items()}))
                    count = len(server.requests)
                status, headers, data = server.respond(body, count)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(monkeypatch) -> Iterator[Callable[[Callable[[dict, int], Reply]], FakeServer]]:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    servers: list[FakeServer] = []

    def start(respond: Callable[[dict, int], Reply]) -> FakeServer:
        servers.append(FakeServer(respond))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def gen(url: str, **kw) -> OpenAIGenerator:
    return OpenAIGenerator("served-model", url, **{"backoff_s": 0.01, "retries": 2, **kw})


def test_request_fields_order_and_mapping(serve):
    server = serve(echo)
    params = GenerationParams(max_new_tokens=9, temperature=0.7, top_p=0.9, seed=11, system_prompt="be safe")
    prompts = ["p0", "p1", [{"role": "user", "content": "p2"}], "p3"]
    out = gen(server.url, concurrency=4).generate(prompts, params, progress=False)
    assert [c.text for c in out] == ["p0 #11", "p1 #11", "p2 #11", "p3 #11"]
    assert all(c.finish_reason == "length" and c.prompt_tokens == 5 and c.completion_tokens == 7 for c in out)
    assert all(c.token_ids == () for c in out)
    body, headers = server.requests[0]
    assert body["model"] == "served-model" and body["max_tokens"] == 9 and body["n"] == 1
    assert body["temperature"] == 0.7 and body["top_p"] == 0.9 and body["seed"] == 11
    assert body["messages"][0] == {"role": "system", "content": "be safe"}
    assert headers["authorization"] == f"Bearer {SECRET}"


def test_n_samples_are_prompt_major_and_choices_sorted(serve):
    def shuffled(body: dict, _: int) -> Reply:
        p = body["messages"][-1]["content"]
        return chat_reply([f"{p}-{i}" for i in range(body["n"])], usage={"prompt_tokens": 3, "completion_tokens": 30},
                          order=list(reversed(range(body["n"]))))

    server = serve(shuffled)
    out = gen(server.url).generate(["a", "b"], GenerationParams(n=3, temperature=1.0), progress=False)
    assert [c.text for c in out] == ["a-0", "a-1", "a-2", "b-0", "b-1", "b-2"]
    # one usage total for three choices cannot be split: 0 each; prompt tokens are per request
    assert {c.completion_tokens for c in out} == {0} and {c.prompt_tokens for c in out} == {3}


def test_server_that_ignores_n_is_asked_again_with_new_seeds(serve):
    server = serve(lambda body, _: chat_reply([f"s{body['seed']}"]))  # no usage block at all
    out = gen(server.url).generate(["q"], GenerationParams(n=3, temperature=1.0, seed=5), progress=False)
    assert [c.text for c in out] == ["s5", "s6", "s7"]
    assert [b["n"] for b, _ in server.requests] == [3, 2, 1]
    assert all(c.prompt_tokens == 0 and c.completion_tokens == 0 for c in out)


def test_retries_500_and_429_then_succeeds(serve):
    def flaky(body: dict, count: int) -> Reply:
        if count == 1:
            return 500, {}, b"oops"
        if count == 2:
            return 429, {"Retry-After": "0"}, b'{"error": {"message": "slow down"}}'
        return chat_reply(["ok"])

    server = serve(flaky)
    assert [c.text for c in gen(server.url).generate(["x"], GenerationParams(), progress=False)] == ["ok"]
    assert len(server.requests) == 3


def test_persistent_5xx_gives_up_with_the_url(serve):
    server = serve(lambda body, count: (503, {}, b""))
    with pytest.raises(UserError, match="after 3 tries.*HTTP 503") as exc:
        gen(server.url).generate(["x"], GenerationParams(), progress=False)
    assert server.url in str(exc.value) and len(server.requests) == 3


@pytest.mark.parametrize(("reply", "needle"), [
    ((200, {}, b"<html>not json</html>"), "not JSON"),
    ((200, {}, b'{"object": "error"}'), "KeyError"),
    ((200, {}, b'{"choices": [{"index": 0, "message": {"content": 5}}]}'), "not a string"),
    ((200, {}, b'{"choices": []}'), "no choices"),
])
def test_malformed_replies_are_clear_user_errors(serve, reply, needle):
    server = serve(lambda body, count: reply)
    with pytest.raises(UserError, match="malformed reply") as exc:
        gen(server.url).generate(["x"], GenerationParams(), progress=False)
    assert needle in str(exc.value) and len(server.requests) == 1  # not retried


def test_client_errors_fail_at_once_and_never_show_the_key(serve):
    server = serve(lambda body, count: (404, {}, b'{"error": {"message": "model served-model does not exist"}}'))
    with pytest.raises(UserError, match="HTTP 404: model served-model does not exist"):
        gen(server.url).generate(["x"], GenerationParams(), progress=False)
    assert len(server.requests) == 1
    server = serve(lambda body, count: (401, {}, b'{"error": "bad key"}'))
    g = gen(server.url)
    with pytest.raises(UserError, match="OPENAI_API_KEY") as exc:
        g.generate(["x"], GenerationParams(), progress=False)
    assert SECRET not in str(exc.value) and SECRET not in repr(g) and SECRET not in str(vars(g))


def test_unreachable_server_is_a_user_error_with_url_and_fix():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before use: nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(UserError, match="unreachable") as exc:
        gen(url, retries=1).generate(["x"], GenerationParams(), progress=False)
    assert url in str(exc.value) and "OPENAI_BASE_URL" in str(exc.value)


def test_get_generator_wiring(serve, monkeypatch):
    server = serve(echo)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    g = get_generator("openai", "served-model", device="cpu", dtype=None)
    assert g.backend == "openai" and g.generate(["p1"], GenerationParams(), progress=False)[0].text == "p1 #0"
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(UserError, match="OPENAI_BASE_URL"):
        get_generator("openai", "served-model")
    with pytest.raises(UserError, match="not an http"):
        get_generator("openai", "served-model", base_url="localhost:8000")


def test_vllm_missing_package_is_a_user_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(UserError, match=r"pip install 'rlvr-safety\[vllm\]'"):
        get_generator("vllm", "default")
