"""Signed webhook delivery, as Whereby does it: one POST per event, in order per meeting,
retried on 5xx or on no answer within the timeout (2 retries with short exponential back-off).

Each event is kept as a `Delivery` record (the envelope, attempts, last status) for the control
API. Delivery runs in background tasks, one lane per meeting, so the call that caused an event
returns at once."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from reflector.logs import get_logger
from reflector.platforms.whereby.signature import HEADER, sign
from reflector.sandbox.activity import Activity
from reflector.sandbox.times import iso_ms, utcnow

RETRIES = 2
BACKOFF_SECONDS = 0.2
HISTORY = 10_000

_log = get_logger("reflector.sandbox.webhooks")


def serialise(envelope: dict[str, Any]) -> bytes:
    """Compact JSON like JavaScript's JSON.stringify (no spaces, non-ASCII left as is)."""
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def envelope(event_type: str, data: dict[str, Any], created_at: datetime) -> dict[str, Any]:
    return {
        "id": secrets.token_hex(32),
        "apiVersion": "1.0",
        "createdAt": iso_ms(created_at),
        "type": event_type,
        "data": data,
    }


@dataclass
class Delivery:
    event: dict[str, Any]
    meeting_id: str
    url: str
    attempts: int = 0
    status_code: int | None = None
    error: str | None = None
    # pending -> delivered | failed
    state: str = "pending"
    attempt_log: list[dict[str, Any]] = field(default_factory=list)

    @property
    def event_id(self) -> str:
        return str(self.event["id"])

    @property
    def event_type(self) -> str:
        return str(self.event["type"])


@dataclass
class _Lane:
    queue: deque[Delivery] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class WebhookSender:
    def __init__(
        self,
        url: str,
        secret: str,
        timeout: float,
        activity: Activity,
        *,
        retries: int = RETRIES,
        backoff: float = BACKOFF_SECONDS,
    ) -> None:
        self.url = url
        self._secret = secret
        self._timeout = timeout
        self._activity = activity
        self._retries = retries
        self._backoff = backoff
        self._lanes: dict[str, _Lane] = {}
        self._client: httpx.AsyncClient | None = None
        # Bounded: a sandbox left running for days keeps only the recent history.
        self.deliveries: deque[Delivery] = deque(maxlen=HISTORY)

    def enqueue(self, meeting_id: str, event_type: str, data: dict[str, Any]) -> Delivery:
        delivery = Delivery(envelope(event_type, data, utcnow()), meeting_id, self.url)
        self.deliveries.append(delivery)
        self._activity.begin()
        lane = self._lanes.setdefault(meeting_id, _Lane())
        lane.queue.append(delivery)
        if lane.task is None:
            lane.task = asyncio.get_running_loop().create_task(self._drain(meeting_id, lane))
        return delivery

    async def _drain(self, meeting_id: str, lane: _Lane) -> None:
        try:
            while lane.queue:
                delivery = lane.queue[0]
                try:
                    await self._deliver(delivery)
                finally:
                    if lane.queue:
                        lane.queue.popleft()
                    self._activity.end()
        finally:
            lane.task = None
            if self._lanes.get(meeting_id) is lane and not lane.queue:
                del self._lanes[meeting_id]

    async def _deliver(self, delivery: Delivery) -> None:
        body = serialise(delivery.event)
        client = self._http()
        for attempt in range(1 + self._retries):
            if attempt:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            delivery.attempts += 1
            # Signed at send time, so a retry carries a fresh timestamp.
            headers = {
                "Content-Type": "application/json",
                HEADER: sign(body, self._secret, int(time.time())),
                "User-Agent": "reflector-whereby-sandbox",
            }
            try:
                async with asyncio.timeout(self._timeout):
                    response = await client.post(self.url, content=body, headers=headers)
            except Exception as exc:
                # No answer in time, a refused connection, even a bad URL: each is retried like
                # a missing answer, and none may stall the meeting's queue.
                missing = isinstance(exc, TimeoutError | httpx.HTTPError)
                delivery.status_code = None
                delivery.error = f"{'no answer' if missing else 'not sent'}: {exc!r}"
                delivery.attempt_log.append({"statusCode": None, "error": delivery.error})
                continue
            delivery.status_code = response.status_code
            delivery.error = None
            delivery.attempt_log.append({"statusCode": response.status_code, "error": None})
            if response.status_code < 500:
                delivery.state = "delivered" if response.is_success else "failed"
                return
        delivery.state = "failed"
        _log.warning(
            "sandbox webhook not delivered",
            event_type=delivery.event_type,
            attempts=delivery.attempts,
            status_code=delivery.status_code,
            error=delivery.error,
        )

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env off: deliveries go straight to the configured URL, never via a proxy.
            self._client = httpx.AsyncClient(timeout=self._timeout, trust_env=False)
        return self._client

    async def cancel(self) -> None:
        """Stop all deliveries in flight and forget the queued ones."""
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._lanes.clear()

    async def aclose(self) -> None:
        await self.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
