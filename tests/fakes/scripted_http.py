"""A scripted HTTP server on loopback, for testing HTTP clients over a real socket.

A real uvicorn serves a Starlette app on 127.0.0.1 (free port) in a thread of its own. A test
queues responses per (method, path); each request takes the next one, and every request is
recorded. Use:

    async def test_x(scripted_http: ScriptedHttpServer) -> None:
        scripted_http.script("POST", "/v1/meetings", Reply(503), Reply(201, {"meetingId": "1"}))
        ...  # point the client at scripted_http.url + "/v1"
        [first, second] = scripted_http.requests_to("POST", "/v1/meetings")

A request with nothing queued gets 418 with `{"error": "scripted server: nothing queued for
..."}` (a status clients do not retry, so the mistake surfaces at once) and is listed in
`unscripted`; the `scripted_http` fixture fails the test when that happens. To use the fixtures
elsewhere, import `scripted_http` and `scripted_http_server` into a conftest.py.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_NO_BODY: Any = object()


@dataclass(frozen=True)
class Reply:
    """One scripted response. `json` is sent as the body unless `body` (raw bytes) is given;
    `delay` seconds pass before the answer (to provoke a client timeout)."""

    status: int = 200
    json: Any = _NO_BODY
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes | None = None
    content_type: str = "application/json"

    def render(self) -> Response:
        if self.body is not None:
            content = self.body
        elif self.json is _NO_BODY or self.status == 204:
            content = b""
        else:
            content = jsonlib.dumps(self.json).encode()
        media_type = self.content_type if content else None
        return Response(
            content, status_code=self.status, headers=self.headers, media_type=media_type
        )


@dataclass(frozen=True)
class Part:
    """One part of a multipart/form-data body."""

    name: str | None
    filename: str | None
    content_type: str
    data: bytes


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    # First value of each query parameter; `query_string` has the raw, encoded form.
    query: dict[str, str]
    query_string: str
    # Lower-case names.
    headers: dict[str, str]
    body: bytes
    received_at: float

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON."""
        try:
            return jsonlib.loads(self.body)
        except ValueError:
            return None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def parts(self) -> list[Part]:
        """The parts of a multipart/form-data body (empty when the body is not multipart)."""
        if not self.content_type.startswith("multipart/"):
            return []
        head = f"Content-Type: {self.content_type}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + self.body)
        result = []
        for part in message.iter_parts():
            assert isinstance(part, Message)
            payload = part.get_payload(decode=True)
            name = part.get_param("name", header="content-disposition")
            result.append(
                Part(
                    name=name if isinstance(name, str) else None,
                    filename=part.get_filename(),
                    content_type=part.get_content_type(),
                    data=payload if isinstance(payload, bytes) else b"",
                )
            )
        return result

    def part(self, name: str) -> Part:
        [found] = [part for part in self.parts() if part.name == name]
        return found


class ScriptedHttpServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: defaultdict[tuple[str, str], deque[Reply]] = defaultdict(deque)
        self._fallbacks: dict[tuple[str, str], Reply] = {}
        self.requests: list[RecordedRequest] = []
        self.unscripted: list[RecordedRequest] = []
        self.url = ""
        self.host = "127.0.0.1"
        self.port = 0
        self.app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self._handle,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                )
            ]
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ------------------------------------------------------------------------

    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Queue replies for (method, path); the path is matched exactly, without the query."""
        with self._lock:
            self._queues[(method.upper(), path)].extend(replies)

    def always(self, method: str, path: str, reply: Reply) -> None:
        """Answer (method, path) with `reply` whenever its queue is empty."""
        with self._lock:
            self._fallbacks[(method.upper(), path)] = reply

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method.upper() and r.path == path]

    def pending(self) -> dict[tuple[str, str], int]:
        """Replies queued but not yet taken, per (method, path)."""
        with self._lock:
            return {key: len(queue) for key, queue in self._queues.items() if queue}

    def reset(self) -> None:
        with self._lock:
            self._queues.clear()
            self._fallbacks.clear()
            self.requests.clear()
            self.unscripted.clear()

    # -- serving --------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            query_string=request.url.query,
            headers={name.lower(): value for name, value in request.headers.items()},
            body=body,
            received_at=time.monotonic(),
        )
        key = (request.method, request.url.path)
        with self._lock:
            self.requests.append(recorded)
            queue = self._queues.get(key)
            reply = queue.popleft() if queue else self._fallbacks.get(key)
            if reply is None:
                self.unscripted.append(recorded)
        if reply is None:
            message = f"scripted server: nothing queued for {request.method} {request.url.path}"
            return Response(jsonlib.dumps({"error": message}), 418, media_type="application/json")
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return reply.render()

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Binding port 0 here and handing the socket to uvicorn avoids a race for the port.
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # Delayed replies may still be sleeping when the session ends.
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="scripted-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("scripted HTTP server did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)


@pytest.fixture(scope="session")
def scripted_http_server() -> Iterator[ScriptedHttpServer]:
    """One server for the whole session; tests should take `scripted_http` instead."""
    server = ScriptedHttpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def scripted_http(scripted_http_server: ScriptedHttpServer) -> Iterator[ScriptedHttpServer]:
    """The session's server, emptied for this test; fails the test on unscripted requests."""
    scripted_http_server.reset()
    yield scripted_http_server
    unscripted = [f"{r.method} {r.path}" for r in scripted_http_server.unscripted]
    scripted_http_server.reset()
    if unscripted:
        pytest.fail(f"requests with no scripted reply: {unscripted}")
