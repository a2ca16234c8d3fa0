"""A real HTTP server on 127.0.0.1 that speaks enough of the OpenAI chat-completions API to test a client.

`FakeOpenAIServer` (http.server in a background thread) answers `POST /v1/chat/completions`, checks the Bearer
key (a wrong key gets a 401 whose body echoes the key, as OpenAI's does in part; with `api_key=None` it is a
keyless server, like a local llama.cpp or vLLM one, that answers 401 to any request carrying an Authorization
header at all), and injects faults per prompt: each request for a prompt consumes the next entry of
`faults[prompt]`:

    "429:<s>"   HTTP 429 with `Retry-After: <s>`       "500", "503"  server errors
    "hang"      no answer until the client gives up      "malformed"   200 with truncated JSON
    "nochoices" 200 with JSON lacking `choices`          "400"         a non-retryable client error

First-token top log-probabilities come from `top_logprobs[prompt]`, else `top_for(prompt)` when set, else
DEFAULT_TOP. It records every attempt (time, prompt, outcome), the request bodies, each request's Authorization
header (None when absent), and the number of requests in progress at once (a hung request stops counting when
the client closes its connection).
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_TOP = [("A", -0.4), ("B", -1.3), ("C", -2.2), (" A", -3.0), ("The", -3.5)]


def answer_text(prompt: str) -> str:
    """The fake model's answer to a prompt."""
    return f"* answer to: {prompt}"


class FakeOpenAIServer:
    def __init__(self, api_key: str | None = "sk-test-key", *, latency_s: float = 0.0, hang_s: float = 5.0,
                 top_for: Callable[[str], list[tuple[str, float]]] | None = None) -> None:
        self.api_key = api_key
        self.top_for = top_for
        self.latency_s = latency_s
        self.hang_s = hang_s
        self.faults: dict[str, list[str]] = {}
        self.top_logprobs: dict[str, list[tuple[str, float]]] = {}
        self.attempts: Counter = Counter()
        self.events: list[tuple[float, str, str]] = []
        self.bodies: list[dict] = []
        self.auth_headers: list[str | None] = []
        self.in_progress = 0
        self.max_in_progress = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- bookkeeping ----------------------------------------------------------------------------------------------
    def _enter(self, prompt: str) -> str:
        with self._lock:
            self.in_progress += 1
            self.max_in_progress = max(self.max_in_progress, self.in_progress)
            self.attempts[prompt] += 1
            queue = self.faults.get(prompt)
            return queue.pop(0) if queue else "ok"

    def _leave(self) -> None:
        with self._lock:
            self.in_progress -= 1

    def _event(self, prompt: str, outcome: str) -> None:
        with self._lock:
            self.events.append((time.monotonic(), prompt, outcome))

    def times(self, prompt: str) -> list[tuple[float, str]]:
        """(arrival time, outcome) of every attempt for `prompt`."""
        return [(t, o) for t, p, o in self.events if p == prompt]

    def outcomes(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for _, p, o in self.events:
            out[p].append(o)
        return dict(out)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeOpenAIServer

    def log_message(self, format, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0.005)
            if readable:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
        return False

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        auth = self.headers.get("Authorization")
        with fake._lock:
            fake.bodies.append(body)
            fake.auth_headers.append(auth)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        if fake.api_key is None and auth is not None:
            self._send(401, b'{"error": {"message": "this server takes no API key", "code": "unexpected_key"}}')
            return
        if fake.api_key is not None and auth != f"Bearer {fake.api_key}":
            provided = (auth or "").removeprefix("Bearer ")
            message = {
                "error": {"message": f"Incorrect API key provided: {provided}.", "code": "invalid_api_key"}
            }
            self._send(401, json.dumps(message).encode())
            return
        prompt = body["messages"][-1]["content"]
        fault = fake._enter(prompt)
        counted = True
        try:
            fake._event(prompt, fault)
            if fault == "hang":
                deadline = time.monotonic() + fake.hang_s
                while time.monotonic() < deadline and not self._client_gone():
                    pass
                fake._leave()
                counted = False
                self.close_connection = True
                return
            if fault.startswith("429"):
                retry_after = fault.partition(":")[2] or "1"
                self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": retry_after})
            elif fault in ("500", "502", "503", "400"):
                self._send(int(fault), b'{"error": {"message": "injected"}}')
            elif fault == "malformed":
                self._send(200, b'{"choices": [{"message": {"content": "cut')
            elif fault == "nochoices":
                self._send(200, b'{"object": "chat.completion", "usage": {}}')
            else:
                if fake.latency_s:
                    time.sleep(fake.latency_s)
                self._send(200, json.dumps(self._completion(body, prompt)).encode())
        finally:
            if counted:
                fake._leave()

    def _completion(self, body: dict, prompt: str) -> dict:
        usage_in = len(prompt.split())
        if body.get("logprobs"):
            k = int(body.get("top_logprobs") or 0)
            fake = self.fake
            top = fake.top_logprobs.get(prompt) or (fake.top_for(prompt) if fake.top_for else DEFAULT_TOP)
            top = top[:k]
            first = top[0] if top else ("A", -0.1)
            content = first[0]
            logprobs = {
                "content": [
                    {
                        "token": first[0],
                        "logprob": first[1],
                        "bytes": list(first[0].encode()),
                        "top_logprobs": [
                            {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top
                        ],
                    }
                ]
            }
            usage_out = 1
        else:
            content = answer_text(prompt)
            logprobs = None
            usage_out = len(content.split())
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": logprobs,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": usage_in,
                "completion_tokens": usage_out,
                "total_tokens": usage_in + usage_out,
            },
        }
