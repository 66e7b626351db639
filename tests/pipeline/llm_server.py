"""A fake OpenAI-compatible chat completions server on loopback, scripted per test.

A stdlib `ThreadingHTTPServer` answers `POST /v1/chat/completions` in a thread of its own on
127.0.0.1 (free port). A test queues what each request gets, in order: a `Reply` (the
assistant's text, or a raw status/body, optionally after a delay), or a function of the
`ChatRequest` that returns one (to answer from the prompt, e.g. one topic per chunk). When the
queue is empty, the `always` answer is used; with none, the request gets 418, which the client
does not retry, so the mistake shows at once. Every request is recorded.

    server.script(Reply("not json"), Reply(json.dumps({...})))
    analyzer = LLMAnalyzer(server.base_url, "key", "test-model", ...)
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_TRANSCRIPT = re.compile(r"<transcript>\n(.*?)\n</transcript>", re.S)
_LINE_TIME = re.compile(r"^\[(\d+):(\d\d)\]", re.M)


@dataclass(frozen=True)
class ChatRequest:
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]
    received_at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body.get("messages", [])
        return messages

    @property
    def prompt(self) -> str:
        """The first user message: the task and, where there is one, the transcript."""
        return next(str(m["content"]) for m in self.messages if m["role"] == "user")

    @property
    def last_user(self) -> str:
        return next(str(m["content"]) for m in reversed(self.messages) if m["role"] == "user")

    @property
    def transcript(self) -> str | None:
        """The transcript text between the <transcript> tags, if the prompt has one."""
        match = _TRANSCRIPT.search(self.prompt)
        return match.group(1) if match else None

    def line_times(self) -> list[float]:
        """The [mm:ss] times at the start of the transcript's lines, in seconds."""
        return [int(m) * 60 + int(s) for m, s in _LINE_TIME.findall(self.transcript or "")]

    @property
    def kind(self) -> str:
        """Which request this is: "topics", "summary", "action_items" or "section"."""
        prompt = self.prompt
        if '{"topics"' in prompt:
            return "topics"
        if '{"action_items"' in prompt:
            return "action_items"
        if '"short_summary"' in prompt:
            return "summary"
        return "section"


@dataclass(frozen=True)
class Reply:
    """One answer. `content` becomes the assistant message of a 200 chat completion, unless
    `body` (raw bytes) is given; `delay` seconds pass first (to provoke a client timeout)."""

    content: str = ""
    status: int = 200
    delay: float = 0.0
    body: bytes | None = None
    finish_reason: str = "stop"
    headers: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def json(value: Any) -> Reply:
        return Reply(json.dumps(value))

    def render(self, model: str) -> bytes:
        if self.body is not None:
            return self.body
        return json.dumps(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.content},
                        "finish_reason": self.finish_reason,
                    }
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            }
        ).encode()


Answer = Reply | Callable[[ChatRequest], Reply]


class FakeLLMServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Answer] = deque()
        self._always: Answer | None = None
        self.requests: list[ChatRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # --- scripting ------------------------------------------------------------------------

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._queue.extend(answers)

    def always(self, answer: Answer | None) -> None:
        with self._lock:
            self._always = answer

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._always = None
            self.requests.clear()

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    # --- serving --------------------------------------------------------------------------

    def _answer(self, request: ChatRequest) -> tuple[Reply | None, str]:
        with self._lock:
            self.requests.append(request)
            answer = self._queue.popleft() if self._queue else self._always
        if answer is None:
            return None, "nothing scripted"
        reply = answer if isinstance(answer, Reply) else answer(request)
        return reply, ""

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                request = ChatRequest(
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body if isinstance(body, dict) else {},
                    received_at=time.monotonic(),
                )
                if self.path != "/v1/chat/completions":
                    self._send(404, b'{"error": "not found"}', {})
                    return
                reply, problem = server._answer(request)
                if reply is None:
                    self._send(418, json.dumps({"error": problem}).encode(), {})
                    return
                if reply.delay:
                    time.sleep(reply.delay)
                self._send(reply.status, reply.render(str(body.get("model", ""))), reply.headers)

            def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test): nothing to tell it

            def log_message(self, format: str, *args: Any) -> None:
                return None

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True  # delayed answers must not hold up the end of the session
        self._server = httpd
        self.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=httpd.serve_forever, name="fake-llm", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
