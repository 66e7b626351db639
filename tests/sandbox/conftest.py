"""The sandbox under test runs with real uvicorn on 127.0.0.1 (a free port each time), beside a
small webhook receiver also on loopback; tests talk to both over real HTTP with httpx."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from reflector.platforms.whereby.signature import HEADER
from reflector.sandbox import SandboxConfig, create_sandbox_app

API_KEY = "sandbox-test-api-key"
WEBHOOK_SECRET = "sandbox-test-webhook-secret"
WAIT_SECONDS = 10.0


class _Server(uvicorn.Server):
    # Several servers run at once in one test: leave the process's signal handlers alone.
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def loopback_socket() -> socket.socket:
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto says TCP;
    # with proto 0 every response waits ~40 ms on delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    return sock


class Servers:
    """uvicorn servers started for one test, stopped together (each takes a tick to stop)."""

    def __init__(self) -> None:
        self._running: list[tuple[_Server, asyncio.Task[None], socket.socket]] = []

    async def start(self, app: ASGIApp, sock: socket.socket) -> str:
        """Serve `app` on the bound socket; its base URL."""
        config = uvicorn.Config(
            app, lifespan="on", log_config=None, access_log=False, timeout_graceful_shutdown=2
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        self._running.append((server, task, sock))
        async with asyncio.timeout(WAIT_SECONDS):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        for server, _task, _sock in self._running:
            server.should_exit = True
        await asyncio.gather(*(task for _server, task, _sock in self._running))
        for _server, _task, sock in self._running:
            sock.close()
        self._running.clear()


@dataclass
class Received:
    """One POST the receiver got (every attempt, retries included)."""

    body: bytes
    signature: str | None
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


@dataclass
class WebhookReceiver:
    """A webhook endpoint. Modes: ok (200), fail_first (500 to an event's first attempt),
    always_fail (500), slow_first (the first attempt answers after `slow_seconds`)."""

    mode: str = "ok"
    slow_seconds: float = 1.0
    received: list[Received] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        first = not any(r.body == body for r in self.received)
        status = 200
        if self.mode == "always_fail" or (self.mode == "fail_first" and first):
            status = 500
        received = Received(body, headers.get(HEADER.lower()), status)
        self.received.append(received)
        self._arrived.set()
        if self.mode == "slow_first" and first:
            await asyncio.sleep(self.slow_seconds)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    @property
    def events(self) -> list[dict[str, Any]]:
        """Events answered with 2xx, in arrival order."""
        return [r.event for r in self.received if 200 <= r.answered < 300]

    def types(self) -> list[str]:
        return [str(e["type"]) for e in self.events]

    async def wait_until(
        self, condition: Callable[[list[dict[str, Any]]], bool], within: float = WAIT_SECONDS
    ) -> list[dict[str, Any]]:
        async with asyncio.timeout(within):
            while not condition(self.events):
                self._arrived.clear()
                await self._arrived.wait()
        return self.events


@dataclass
class RunningSandbox:
    url: str
    config: SandboxConfig
    api: httpx.AsyncClient
    http: httpx.AsyncClient
    receiver: WebhookReceiver | None

    async def create_meeting(self, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"endDate": in_hours(2)}
        body.update(fields)
        response = await self.api.post("/meetings", json=body)
        assert response.status_code == 201, response.text
        meeting: dict[str, Any] = response.json()
        return meeting

    async def join(self, meeting_id: str, name: str, **extra: Any) -> str:
        response = await self.http.post(
            f"/_sandbox/meetings/{meeting_id}/participants", json={"displayName": name, **extra}
        )
        assert response.status_code == 201, response.text
        return str(response.json()["participantId"])

    async def leave(self, meeting_id: str, participant_id: str) -> None:
        response = await self.http.delete(
            f"/_sandbox/meetings/{meeting_id}/participants/{participant_id}"
        )
        assert response.status_code == 204, response.text

    async def state(self, meeting_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/_sandbox/meetings/{meeting_id}")
        assert response.status_code == 200, response.text
        value: dict[str, Any] = response.json()
        return value

    async def idle(self) -> None:
        """Until every webhook is delivered and every recording stored."""
        response = await self.http.get("/_sandbox/wait", params={"timeout": WAIT_SECONDS})
        assert response.status_code == 200, response.text

    async def deliveries(self) -> list[dict[str, Any]]:
        response = await self.http.get("/_sandbox/webhooks")
        value: list[dict[str, Any]] = response.json()["deliveries"]
        return value


StartSandbox = Callable[..., Awaitable[RunningSandbox]]


def in_hours(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


@pytest.fixture
async def start_sandbox(tmp_path: Path) -> AsyncIterator[StartSandbox]:
    """Starts sandboxes (and their receivers) for the test; all stop at its end."""
    servers = Servers()
    async with AsyncExitStack() as stack:
        stack.push_async_callback(servers.stop)

        async def start(*, receiver: str | None = "ok", **overrides: Any) -> RunningSandbox:
            hook: WebhookReceiver | None = None
            webhook: dict[str, Any] = {}
            if receiver is not None:
                hook = WebhookReceiver(receiver)
                hook_url = await servers.start(hook, loopback_socket())
                webhook = {
                    "webhook_url": hook_url + "/v1/whereby",
                    "webhook_secret": WEBHOOK_SECRET,
                }
            sock = loopback_socket()
            values: dict[str, Any] = {
                "api_key": API_KEY,
                "public_url": f"http://127.0.0.1:{sock.getsockname()[1]}",
                "recordings_dir": tmp_path / "recordings",
                **webhook,
            }
            values.update(overrides)
            config = SandboxConfig(**values)
            url = await servers.start(create_sandbox_app(config), sock)
            api = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=url + "/v1",
                    headers={"Authorization": f"Bearer {API_KEY}"},
                    trust_env=False,
                )
            )
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=url, trust_env=False))
            return RunningSandbox(url, config, api, http, hook)

        yield start


@pytest.fixture
async def sandbox(start_sandbox: StartSandbox) -> RunningSandbox:
    return await start_sandbox()
