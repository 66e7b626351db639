"""In front of the Whereby API (`/v1/...`): log the request, check the API key, apply the
rate-limit switch. A pure ASGI middleware, so the body is read once and handed on unchanged."""

from __future__ import annotations

import hmac
import json
import math
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reflector.sandbox.errors import SandboxError
from reflector.sandbox.state import LoggedRequest, SandboxState
from reflector.sandbox.times import utcnow

API_PREFIX = "/v1/"
RATE_LIMIT_MESSAGE = "Rate limit active for throttle key: organization:1"


class ApiGuard:
    def __init__(self, app: ASGIApp, *, state: SandboxState, api_key: str) -> None:
        self.app = app
        self.state = state
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        logged = _log_entry(scope, headers, body)
        self.state.requests.append(logged)

        rejection = self._reject(headers.get("authorization", b""))
        if rejection is not None:
            logged.status = rejection.status_code
            await rejection.response()(scope, receive, send)
            return

        unread: bytes | None = body

        async def replay() -> Message:
            nonlocal unread
            if unread is not None:
                chunk, unread = unread, None
                return {"type": "http.request", "body": chunk, "more_body": False}
            return await more()

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                logged.status = int(message["status"])
            await send(message)

        await self.app(scope, replay, record_status)

    def _reject(self, authorization: bytes) -> SandboxError | None:
        if not hmac.compare_digest(authorization, self.expected):
            return SandboxError(401, "Unauthorized: missing or invalid API key")
        limit = self.state.take_rate_limit()
        if limit is None:
            return None
        seconds = max(0.0, limit.retry_after)
        return SandboxError(
            429,
            RATE_LIMIT_MESSAGE,
            data={"msLeft": round(seconds * 1000)},
            headers={
                "Retry-After": str(math.ceil(seconds)),
                "X-RateLimit-Limit": str(limit.limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(math.ceil(time.time() + seconds)),
            },
        )


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a `receive` for what comes after it (disconnects)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            # The client went away before sending the body; pass that on as it came.
            pending: Message | None = message

            async def after() -> Message:
                nonlocal pending
                if pending is not None:
                    sent, pending = pending, None
                    return sent
                return await receive()

            return b"".join(chunks), after
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), receive


def _log_entry(scope: Scope, headers: dict[str, bytes], body: bytes) -> LoggedRequest:
    query_string = scope.get("query_string", b"").decode("latin-1")
    query: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        # Repeated keys are joined with commas, as Whereby's `fields=a,b` would read.
        query[key] = f"{query[key]},{value}" if key in query else value
    content_type = headers.get("content-type", b"").decode("latin-1") or None
    parsed: Any = None
    if body and content_type and "json" in content_type:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
    return LoggedRequest(
        method=str(scope["method"]),
        path=str(scope["path"]),
        query_string=query_string,
        query=query,
        content_type=content_type,
        body=parsed,
        received_at=utcnow(),
    )
