"""Sending deliveries: one signed POST per attempt, every attempt logged, retries with
exponential back-off.

A 2xx answer is success. 5xx, 408, 429, timeouts and connection errors are retried (30 s,
doubling, at most an hour apart; a 429's Retry-After is honoured up to that hour) until
ROOM_WEBHOOK_RETRY_HOURS after the event, then the delivery fails. Other answers (4xx, and 3xx:
redirects are not followed) fail it at once: the receiver refused it, and asking again would
not change that.

Replicas never send one delivery at the same time: a delivery is claimed by a compare-and-set
on its attempt counter, which also pushes its next_attempt_at past the request's timeout (a
lease: if the claimer dies, the delivery is due again afterwards). Time is passed in (`now`)
so tests move it forward without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector import __version__
from reflector.logs import get_logger
from reflector.room_webhooks import payloads
from reflector.room_webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from reflector.room_webhooks.outbox import insert_delivery, webhook_target
from reflector.room_webhooks.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    sign,
)
from reflector.room_webhooks.urls import sends_to
from reflector.rooms.models import Room
from reflector.settings import Settings

_log = get_logger("reflector.room_webhooks")

BACKOFF_FIRST_SECONDS = 30.0
BACKOFF_MAX_SECONDS = 3600.0
# Deliveries claimed per query, and sent at once by one process.
BATCH_SIZE = 50
CONCURRENCY = 8
# A claim outlives the request's timeout by this much before another replica may retry it.
_LEASE_MARGIN = timedelta(seconds=60)
_RETRIED_4XX = frozenset({408, 429})
USER_AGENT = f"Reflector/{__version__}"


class Outcome:
    succeeded = "succeeded"
    retrying = "retrying"
    failed = "failed"


@dataclass(frozen=True)
class Answer:
    """What one request got: a status code, or an error sentence when there was no answer."""

    status_code: int | None
    error: str | None
    duration_ms: int
    retry_after: float | None = None  # seconds, from a 429's Retry-After

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        code = self.status_code
        return code is None or code >= 500 or code in _RETRIED_4XX


@dataclass(frozen=True)
class Decision:
    outcome: str  # Outcome.*
    next_attempt_at: datetime | None
    gave_up: str | None = None  # why a retryable failure is not retried


@dataclass(frozen=True)
class AttemptResult:
    delivery_id: str
    outcome: str
    status_code: int | None
    error: str | None
    duration_ms: int


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...): 30, 60, 120, ...
    capped at an hour."""
    doublings = min(max(attempt - 1, 0), 20)  # past the cap long before; no huge powers
    return min(BACKOFF_FIRST_SECONDS * float(2**doublings), BACKOFF_MAX_SECONDS)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After in seconds from now: delta-seconds or an HTTP date; None when absent or
    unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - now).total_seconds(), 0.0)


def decide(
    answer: Answer, attempt: int, created_at: datetime, now: datetime, window: timedelta
) -> Decision:
    """What follows attempt number `attempt` of a delivery created at `created_at`."""
    if answer.succeeded:
        return Decision(Outcome.succeeded, None)
    if not answer.retryable:
        return Decision(Outcome.failed, None)
    delay = (
        backoff(attempt)
        if answer.retry_after is None
        else min(answer.retry_after, BACKOFF_MAX_SECONDS)
    )
    next_at = now + timedelta(seconds=delay)
    if next_at > created_at + window:
        hours = window.total_seconds() / 3600
        return Decision(
            Outcome.failed,
            None,
            f"no success within ROOM_WEBHOOK_RETRY_HOURS ({hours:g} h) of the event, so it is "
            "not retried any more",
        )
    return Decision(Outcome.retrying, next_at)


def request_headers(
    event: str, delivery_id: str, body: bytes, secret: str, now: datetime
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        SIGNATURE_HEADER: sign(body, secret, int(now.timestamp())),
    }


def _answer_error(response: httpx.Response) -> str | None:
    code = response.status_code
    if 200 <= code < 300:
        return None
    if 300 <= code < 400:
        location = response.headers.get("location")
        to = f" to {location}" if location else ""
        return (
            f"The receiver answered {code}, a redirect{to}; redirects are not followed: set "
            "webhook_url to the final URL."
        )
    if code >= 500 or code in _RETRIED_4XX:
        return f"The receiver answered {code}."
    return (
        f"The receiver answered {code}, which is not retried (only 5xx, 408, 429 and no answer "
        "are): fix the receiver, then try it with POST /v1/rooms/<room>/webhook/test."
    )


async def post(
    http: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    seconds: float,
    now: datetime,
) -> Answer:
    """One POST, never following redirects, within `seconds` all told. The answer's
    body is not read: only its status matters."""
    host = urlsplit(url).hostname or url
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        async with (
            asyncio.timeout(seconds),
            http.stream(
                "POST",
                url,
                content=body,
                headers=headers,
                timeout=seconds,
                follow_redirects=False,
            ) as response,
        ):
            retry_after = (
                parse_retry_after(response.headers.get("retry-after"), now)
                if response.status_code == 429
                else None
            )
            return Answer(response.status_code, _answer_error(response), elapsed(), retry_after)
    except (TimeoutError, httpx.TimeoutException):
        return Answer(
            None,
            f"No answer from {host} within {seconds:g} s (ROOM_WEBHOOK_TIMEOUT_SECONDS).",
            elapsed(),
        )
    except httpx.ConnectError as exc:
        return Answer(None, f"Could not connect to {host}: {exc or type(exc).__name__}.", elapsed())
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        return Answer(
            None, f"The request to {host} failed: {type(exc).__name__}: {exc}.", elapsed()
        )


@dataclass(frozen=True)
class _Claim:
    delivery_id: str
    number: int  # the attempt this claim makes


async def _claim_due(engine: AsyncEngine, now: datetime, lease_until: datetime) -> list[_Claim]:
    due = WebhookDelivery.status == DeliveryStatus.pending.value
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(WebhookDelivery.id, WebhookDelivery.attempts)
                .where(due, WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(BATCH_SIZE)
            )
        ).all()
    claims: list[_Claim] = []
    if not rows:
        return claims
    async with engine.begin() as conn:
        for delivery_id, attempts in rows:
            # Only one claimer sees the counter it read: another replica's claim changed it.
            won = await conn.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    due,
                    WebhookDelivery.attempts == attempts,
                    WebhookDelivery.next_attempt_at <= now,
                )
                .values(attempts=attempts + 1, next_attempt_at=lease_until, updated_at=now)
            )
            if won.rowcount == 1:
                claims.append(_Claim(delivery_id, attempts + 1))
    return claims


async def _attempt(
    engine: AsyncEngine,
    http: httpx.AsyncClient,
    settings: Settings,
    claim: _Claim,
    now: datetime,
    *,
    retry: bool,
) -> AttemptResult | None:
    """Send a claimed delivery once and record the attempt; None when the delivery is gone
    (its room was deleted)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    WebhookDelivery.room_id,
                    WebhookDelivery.event,
                    WebhookDelivery.payload,
                    WebhookDelivery.created_at,
                    Room.webhook_url,
                    Room.webhook_secret,
                )
                .join(Room, Room.id == WebhookDelivery.room_id)
                .where(WebhookDelivery.id == claim.delivery_id)
            )
        ).first()
    if row is None:
        return None
    if row.webhook_url is None or row.webhook_secret is None:
        # Removed after the event: the owner no longer wants events sent anywhere.
        gone = "The room has no webhook_url any more, so the event was not sent."
        await _finish(engine, claim, now, status=Outcome.failed, error=gone, status_code=None)
        return AttemptResult(claim.delivery_id, Outcome.failed, None, gone, 0)
    # The room's URL now, not the one at the event: a corrected URL gets the retries.
    url: str = row.webhook_url
    if not sends_to(url, settings):
        # Set before ENVIRONMENT=production: the API refuses such URLs now; so does sending.
        plain = (
            "The room's webhook_url is http://, and in production (ENVIRONMENT=production) "
            "events are sent over https only; set an https:// webhook_url."
        )
        await _finish(engine, claim, now, status=Outcome.failed, error=plain, status_code=None)
        return AttemptResult(claim.delivery_id, Outcome.failed, None, plain, 0)
    body = payloads.render(row.payload, str(settings.BASE_URL))
    headers = request_headers(row.event, claim.delivery_id, body, row.webhook_secret, now)
    answer = await post(http, url, body, headers, settings.ROOM_WEBHOOK_TIMEOUT_SECONDS, now)
    if retry:
        window = timedelta(hours=settings.ROOM_WEBHOOK_RETRY_HOURS)
        decision = decide(answer, claim.number, row.created_at, now, window)
    else:
        decision = Decision(Outcome.succeeded if answer.succeeded else Outcome.failed, None)
    async with engine.begin() as conn:
        await conn.execute(
            insert(WebhookAttempt).values(
                delivery_id=claim.delivery_id,
                number=claim.number,
                attempted_at=now,
                status_code=answer.status_code,
                error=answer.error,
                duration_ms=answer.duration_ms,
                outcome=decision.outcome,
            )
        )
    error = answer.error
    if decision.gave_up:
        error = f"{error.rstrip('.') if error else 'Failed'}; {decision.gave_up}."
    await _finish(
        engine,
        claim,
        now,
        status=decision.outcome,
        error=error,
        status_code=answer.status_code,
        next_attempt_at=decision.next_attempt_at,
        url=url,
    )
    log = _log.info if decision.outcome == Outcome.succeeded else _log.warning
    log(
        "webhook attempt",
        delivery_id=claim.delivery_id,
        room_id=row.room_id,
        webhook_event=row.event,
        host=urlsplit(url).hostname,
        attempt=claim.number,
        status_code=answer.status_code,
        outcome=decision.outcome,
        error=error,
        duration_ms=answer.duration_ms,
    )
    return AttemptResult(
        claim.delivery_id, decision.outcome, answer.status_code, error, answer.duration_ms
    )


async def _finish(
    engine: AsyncEngine,
    claim: _Claim,
    now: datetime,
    *,
    status: str,
    error: str | None,
    status_code: int | None,
    next_attempt_at: datetime | None = None,
    url: str | None = None,
) -> None:
    final = status != Outcome.retrying
    values: dict[str, object] = {
        "status": status if final else DeliveryStatus.pending.value,
        "next_attempt_at": next_attempt_at,
        "last_status_code": status_code,
        "last_error": error,
        "finished_at": now if final else None,
        "updated_at": now,
    }
    if url is not None:
        values["url"] = url
    async with engine.begin() as conn:
        # Still our claim: a claim that outlived its lease leaves the row to its successor.
        await conn.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == claim.delivery_id,
                WebhookDelivery.attempts == claim.number,
            )
            .values(**values)
        )


async def deliver_due(
    engine: AsyncEngine, http: httpx.AsyncClient, settings: Settings, now: datetime
) -> int:
    """Make one attempt of every pending delivery due at `now`; returns how many were made.
    The background loop calls it every ROOM_WEBHOOK_INTERVAL_SECONDS."""
    lease_until = now + timedelta(seconds=settings.ROOM_WEBHOOK_TIMEOUT_SECONDS) + _LEASE_MARGIN
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(claim: _Claim) -> None:
        async with limit:
            try:
                await _attempt(engine, http, settings, claim, now, retry=True)
            except Exception:
                # Its lease runs out and it is attempted again; the others go on.
                _log.exception("webhook attempt crashed", delivery_id=claim.delivery_id)

    made = 0
    # Claimed rows are no longer due (leased, then rescheduled or finished): this ends.
    while claims := await _claim_due(engine, now, lease_until):
        await asyncio.gather(*(one(claim) for claim in claims))
        made += len(claims)
    return made


async def send_test(
    engine: AsyncEngine, http: httpx.AsyncClient, settings: Settings, room_id: str, now: datetime
) -> AttemptResult | None:
    """Send a `test` event to the room's webhook URL now, once (no retries), logged as a
    delivery with its attempt; None when the room has no webhook URL."""
    async with engine.begin() as conn:
        target = await webhook_target(conn, room_id)
        if target is None:
            return None
        url, room = target
        delivery_id = await insert_delivery(
            conn, room_id, url, payloads.TEST, payloads.for_test(room), now, due=False
        )
    return await _attempt(engine, http, settings, _Claim(delivery_id, 1), now, retry=False)
