"""The dispatcher against a real receiver on 127.0.0.1, time driven forward by hand: back-off,
the retry window, Retry-After, refusals, redirects, timeouts, and one sender per delivery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db.engine import create_session_factory
from reflector.logs import configure_logging
from reflector.room_webhooks.dispatcher import (
    Answer,
    Outcome,
    backoff,
    decide,
    deliver_due,
    parse_retry_after,
)
from reflector.room_webhooks.models import WebhookAttempt, WebhookDelivery
from reflector.room_webhooks.outbox import insert_delivery
from reflector.room_webhooks.signing import new_secret, verify
from reflector.rooms.models import Room
from reflector.settings import LogFormat, Settings
from tests.conftest import Account, Database, make_settings
from tests.factories import make_room
from tests.hardening.conftest import PRODUCTION
from tests.room_webhooks.receiver import Receiver, Reply

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
DAY = timedelta(hours=24)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


# ---------------------------------------------------------------------- pure decisions


def test_backoff_doubles_from_30_seconds_up_to_an_hour() -> None:
    assert [backoff(n) for n in range(1, 10)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600, 3600,
    ]  # fmt: skip
    assert backoff(10_000) == 3600


@pytest.mark.parametrize(
    ("answer", "outcome", "delay"),
    [
        (Answer(200, None, 5), Outcome.succeeded, None),
        (Answer(204, None, 5), Outcome.succeeded, None),
        (Answer(500, "x", 5), Outcome.retrying, 120),
        (Answer(503, "x", 5), Outcome.retrying, 120),
        (Answer(408, "x", 5), Outcome.retrying, 120),
        (Answer(None, "timed out", 5), Outcome.retrying, 120),
        (Answer(429, "x", 5), Outcome.retrying, 120),  # no Retry-After: back-off
        (Answer(429, "x", 5, retry_after=7), Outcome.retrying, 7),
        (Answer(429, "x", 5, retry_after=86_400), Outcome.retrying, 3600),  # capped
        (Answer(400, "x", 5), Outcome.failed, None),
        (Answer(401, "x", 5), Outcome.failed, None),
        (Answer(404, "x", 5), Outcome.failed, None),
        (Answer(410, "x", 5), Outcome.failed, None),
        (Answer(422, "x", 5), Outcome.failed, None),
        (Answer(302, "x", 5), Outcome.failed, None),  # redirects are not followed
    ],
)
def test_decide_after_a_third_attempt(answer: Answer, outcome: str, delay: float | None) -> None:
    decision = decide(answer, 3, NOW - seconds(60), NOW, DAY)
    assert decision.outcome == outcome
    expected = None if delay is None else NOW + seconds(delay)
    assert decision.next_attempt_at == expected


def test_the_retry_window_ends_retries() -> None:
    created = NOW - DAY + seconds(100)
    # 60 s later is still inside the window; 120 s later is not.
    assert decide(Answer(500, "x", 1), 2, created, NOW, DAY).outcome == Outcome.retrying
    late = decide(Answer(500, "x", 1), 3, created, NOW, DAY)
    assert (late.outcome, late.next_attempt_at) == (Outcome.failed, None)
    assert late.gave_up is not None
    assert "ROOM_WEBHOOK_RETRY_HOURS (24 h)" in late.gave_up


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Sat, 28 Nov 2026 12:02:00 GMT", 120.0),
        ("Sat, 28 Nov 2026 11:00:00 GMT", 0.0),  # in the past: now
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


# ---------------------------------------------------------------------- against a receiver


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def webhook_room(engine: AsyncEngine, account: Account, url: str | None) -> Room:
    return await make_room(engine, account.user_id, webhook_url=url, webhook_secret=new_secret())


async def enqueue(engine: AsyncEngine, room: Room, now: datetime = NOW) -> str:
    assert room.webhook_url is not None
    async with engine.begin() as conn:
        return await insert_delivery(
            conn, room.id, room.webhook_url, "meeting.ended", {"room": {"id": room.id}}, now
        )


async def load(engine: AsyncEngine, delivery_id: str) -> tuple[WebhookDelivery, list[str]]:
    """The delivery and its attempts' outcomes, in order."""
    async with create_session_factory(engine)() as session:
        delivery = await session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        attempts = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.number)
        )
        return delivery, [a.outcome for a in attempts]


async def test_retries_back_off_then_succeed(
    engine: AsyncEngine,
    alice: Account,
    receiver: Receiver,
    settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    room = await webhook_room(engine, alice, receiver.url)
    delivery_id = await enqueue(engine, room)
    receiver.script(500, 503, 200)

    assert await deliver_due(engine, http, settings, NOW) == 1
    delivery, outcomes = await load(engine, delivery_id)
    assert (delivery.status, delivery.next_attempt_at) == ("pending", NOW + seconds(30))
    assert (delivery.last_status_code, delivery.last_error) == (500, "The receiver answered 500.")
    assert outcomes == ["retrying"]

    assert await deliver_due(engine, http, settings, NOW + seconds(29)) == 0  # not yet due
    assert await deliver_due(engine, http, settings, NOW + seconds(30)) == 1
    delivery, _ = await load(engine, delivery_id)
    assert delivery.next_attempt_at == NOW + seconds(90)  # 60 s after the second attempt

    assert await deliver_due(engine, http, settings, NOW + seconds(90)) == 1
    delivery, outcomes = await load(engine, delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 3, 200)
    assert (delivery.next_attempt_at, delivery.finished_at) == (None, NOW + seconds(90))
    assert outcomes == ["retrying", "retrying", "succeeded"]
    assert await deliver_due(engine, http, settings, NOW + DAY) == 0

    # Every attempt is the same body, signed at the time of sending.
    assert len({r.body for r in receiver.requests}) == 1
    for request, sent_at in zip(receiver.requests, [0, 30, 90], strict=True):
        assert request.path == "/hooks/reflector"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"].startswith("Reflector/")
        assert request.headers["x-reflector-event"] == "meeting.ended"
        assert request.headers["x-reflector-delivery"] == delivery_id
        assert room.webhook_secret is not None
        signed = verify(
            request.body,
            request.headers["x-reflector-signature"],
            room.webhook_secret,
            (NOW + seconds(sent_at)).timestamp(),
            tolerance=0,
        )
        assert signed.ok, signed
    body = json.loads(receiver.requests[0].body)
    assert (body["id"], body["event"]) == (delivery_id, "meeting.ended")
    assert datetime.fromisoformat(body["created_at"]) == NOW


async def test_a_4xx_fails_at_once(
    engine: AsyncEngine,
    alice: Account,
    receiver: Receiver,
    settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    room = await webhook_room(engine, alice, receiver.url)
    delivery_id = await enqueue(engine, room)
    receiver.script(400)
    assert await deliver_due(engine, http, settings, NOW) == 1
    assert await deliver_due(engine, http, settings, NOW + DAY) == 0
    delivery, outcomes = await load(engine, delivery_id)
    assert (delivery.status, delivery.last_status_code, outcomes) == ("failed", 400, ["failed"])
    assert delivery.last_error is not None
    assert "not retried" in delivery.last_error
    assert len(receiver.requests) == 1


async def test_retry_after_of_a_429_is_honoured_up_to_an_hour(
    engine: AsyncEngine,
    alice: Account,
    receiver: Receiver,
    settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    room = await webhook_room(engine, alice, receiver.url)
    delivery_id = await enqueue(engine, room)
    receiver.script(
        Reply(429, {"Retry-After": "120"}), Reply(429, {"Retry-After": "86400"}), Reply(204)
    )
    await deliver_due(engine, http, settings, NOW)
    delivery, _ = await load(engine, delivery_id)
    assert delivery.next_attempt_at == NOW + seconds(120)
    await deliver_due(engine, http, settings, NOW + seconds(120))
    delivery, _ = await load(engine, delivery_id)
    assert delivery.next_attempt_at == NOW + seconds(120 + 3600)
    await deliver_due(engine, http, settings, NOW + seconds(120 + 3600))
    delivery, outcomes = await load(engine, delivery_id)
    assert (delivery.status, outcomes) == ("succeeded", ["retrying", "retrying", "succeeded"])


async def test_retries_stop_at_the_end_of_the_window(
    engine: AsyncEngine, alice: Account, receiver: Receiver, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, ROOM_WEBHOOK_RETRY_HOURS=1)
    room = await webhook_room(engine, alice, receiver.url)
    delivery_id = await enqueue(engine, room)
    receiver.always = Reply(500)
    now = NOW
    async with httpx.AsyncClient() as http:
        while True:
            assert await deliver_due(engine, http, settings, now) == 1
            delivery, outcomes = await load(engine, delivery_id)
            if delivery.next_attempt_at is None:
                break
            now = delivery.next_attempt_at
    # At 0, 30, 90, 210, 450, 930 and 1890 s; the next (3810 s) would be past the hour.
    assert now == NOW + seconds(1890)
    assert outcomes == ["retrying"] * 6 + ["failed"]
    assert delivery.status == "failed"
    assert delivery.last_error == (
        "The receiver answered 500; no success within ROOM_WEBHOOK_RETRY_HOURS (1 h) of the "
        "event, so it is not retried any more."
    )


async def test_redirects_are_not_followed(
    engine: AsyncEngine,
    alice: Account,
    receiver: Receiver,
    settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    room = await webhook_room(engine, alice, receiver.url)
    delivery_id = await enqueue(engine, room)
    receiver.script(Reply(302, {"Location": receiver.url + "/elsewhere"}))
    await deliver_due(engine, http, settings, NOW)
    delivery, outcomes = await load(engine, delivery_id)
    assert (delivery.status, outcomes) == ("failed", ["failed"])
    assert delivery.last_error is not None
    assert "redirects are not followed" in delivery.last_error
    assert len(receiver.requests) == 1


async def test_no_answer_and_no_connection_are_retried(
    engine: AsyncEngine, alice: Account, receiver: Receiver, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, ROOM_WEBHOOK_TIMEOUT_SECONDS=0.2)
    room = await webhook_room(engine, alice, receiver.url)
    slow = await enqueue(engine, room)
    receiver.script(Reply(200, delay=3))
    async with httpx.AsyncClient() as http:
        await deliver_due(engine, http, settings, NOW)
        delivery, outcomes = await load(engine, slow)
        assert (delivery.status, delivery.last_status_code, outcomes) == (
            "pending",
            None,
            ["retrying"],
        )
        assert delivery.last_error == (
            "No answer from 127.0.0.1 within 0.2 s (ROOM_WEBHOOK_TIMEOUT_SECONDS)."
        )

        # Nothing listens on the receiver's port once it is closed: connection refused.
        async with create_session_factory(engine)() as session:
            await session.execute(
                update(Room).where(Room.id == room.id).values(webhook_url="http://127.0.0.1:9/x")
            )
            await session.commit()
        await deliver_due(engine, http, settings, NOW + seconds(30))
        delivery, outcomes = await load(engine, slow)
        assert outcomes == ["retrying", "retrying"]
        assert delivery.url == "http://127.0.0.1:9/x"  # the room's URL now
        assert delivery.last_error is not None
        assert delivery.last_error.startswith("Could not connect to 127.0.0.1")


async def test_a_removed_url_fails_pending_deliveries_without_sending(
    engine: AsyncEngine,
    alice: Account,
    receiver: Receiver,
    settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    room = await webhook_room(engine, alice, receiver.url)
    delivery_id = await enqueue(engine, room)
    async with create_session_factory(engine)() as session:
        await session.execute(update(Room).where(Room.id == room.id).values(webhook_url=None))
        await session.commit()
    await deliver_due(engine, http, settings, NOW)
    delivery, outcomes = await load(engine, delivery_id)
    assert (delivery.status, outcomes) == ("failed", [])
    assert delivery.last_error == (
        "The room has no webhook_url any more, so the event was not sent."
    )
    assert receiver.requests == []


async def test_production_never_sends_over_plain_http(
    engine: AsyncEngine,
    alice: Account,
    receiver: Receiver,
    tmp_path: Path,
    http: httpx.AsyncClient,
) -> None:
    """A room given an http:// URL before the switch to production: the API refuses such URLs
    now (tests/room_webhooks/test_api.py), and the dispatcher does not send to it either."""
    production = make_settings(tmp_path, **PRODUCTION)
    room = await webhook_room(engine, alice, receiver.url)
    assert receiver.url.startswith("http://")
    delivery_id = await enqueue(engine, room)
    await deliver_due(engine, http, production, NOW)
    delivery, outcomes = await load(engine, delivery_id)
    assert (delivery.status, outcomes) == ("failed", [])
    assert delivery.last_error is not None
    assert "events are sent over https only; set an https:// webhook_url" in delivery.last_error
    assert receiver.requests == []


async def test_two_replicas_never_send_one_delivery_twice(
    engine: AsyncEngine,
    database: Database,
    alice: Account,
    receiver: Receiver,
    settings: Settings,
) -> None:
    room = await webhook_room(engine, alice, receiver.url)
    ids = [await enqueue(engine, room) for _ in range(5)]
    other = database.open()  # a second process's engine on the same database
    try:
        async with httpx.AsyncClient() as one, httpx.AsyncClient() as two:
            made = await asyncio.gather(
                deliver_due(engine, one, settings, NOW),
                deliver_due(other, two, settings, NOW),
            )
    finally:
        await other.dispose()
    assert sum(made) == 5
    sent = sorted(r.headers["x-reflector-delivery"] for r in receiver.requests)
    assert sent == sorted(ids)
    for delivery_id in ids:
        delivery, outcomes = await load(engine, delivery_id)
        assert (delivery.status, delivery.attempts, outcomes) == ("succeeded", 1, ["succeeded"])


async def test_log_lines_carry_neither_secret_nor_signature(
    engine: AsyncEngine,
    alice: Account,
    receiver: Receiver,
    settings: Settings,
    http: httpx.AsyncClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("DEBUG", LogFormat.json)
    try:
        room = await webhook_room(engine, alice, receiver.url + "?token=in-the-url")
        await enqueue(engine, room)
        receiver.script(500)
        await deliver_due(engine, http, settings, NOW)
        await deliver_due(engine, http, settings, NOW + seconds(30))
    finally:
        logged = capsys.readouterr().err
        configure_logging()
    assert "webhook attempt" in logged
    assert room.webhook_secret is not None
    assert room.webhook_secret not in logged
    signatures = [r.headers["x-reflector-signature"] for r in receiver.requests]
    assert len(signatures) == 2
    for signature in signatures:
        assert signature.split("v1=")[1] not in logged
    assert "in-the-url" not in logged
