"""POST /v1/whereby: verification, the event inbox, ordering, duplicates, limits."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.app import create_app
from reflector.db.engine import create_session_factory
from reflector.meetings.models import Meeting, MeetingSession, Participant
from reflector.platforms.whereby.signature import sign
from reflector.webhooks.models import WebhookEvent, WebhookRejection
from tests.conftest import Account, make_settings
from tests.factories import make_meeting
from tests.webhooks.whereby_events import (
    BASE_TIME,
    client_event,
    compact,
    envelope,
    signed_headers,
)

URL = "/v1/whereby"


async def post_event(client: httpx.AsyncClient, event: dict[str, Any]) -> httpx.Response:
    body = compact(event)
    return await client.post(URL, content=body, headers=signed_headers(body))


async def meeting_state(engine: AsyncEngine, meeting_id: str) -> tuple[int, dict[str, bool]]:
    async with create_session_factory(engine)() as session:
        meeting = await session.get(Meeting, meeting_id)
        assert meeting is not None
        people = await session.scalars(
            select(Participant).where(Participant.meeting_id == meeting_id)
        )
        return meeting.num_clients, {p.participant_id: p.present for p in people}


async def count(engine: AsyncEngine, model: type[Any]) -> int:
    async with create_session_factory(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
async def meeting(engine: AsyncEngine, alice: Account) -> Meeting:
    return await make_meeting(engine, alice)


def joined(meeting: Meeting, participant: str, n: int, created: float, **kw: Any) -> dict[str, Any]:
    return client_event(
        "joined",
        meeting.platform_meeting_id,
        meeting.platform_room_name,
        participant,
        n,
        created=created,
        **kw,
    )


def left(meeting: Meeting, participant: str, n: int, created: float, **kw: Any) -> dict[str, Any]:
    return client_event(
        "left",
        meeting.platform_meeting_id,
        meeting.platform_room_name,
        participant,
        n,
        created=created,
        **kw,
    )


async def test_join_and_leave_update_the_meeting(
    client: httpx.AsyncClient, engine: AsyncEngine, meeting: Meeting, alice: Account
) -> None:
    response = await post_event(client, joined(meeting, "p1", 1, 0, name="Ada"))
    assert response.status_code == 200
    assert response.json()["status"] == "applied"
    await post_event(client, joined(meeting, "p2", 2, 1, name="Grace"))
    assert await meeting_state(engine, meeting.id) == (2, {"p1": True, "p2": True})
    await post_event(client, left(meeting, "p1", 1, 2))
    assert await meeting_state(engine, meeting.id) == (1, {"p1": False, "p2": True})
    shown = await client.get(f"/v1/meetings/{meeting.id}", headers=alice.headers)
    assert shown.json()["num_clients_by_role"] == {"visitor": 1}


async def test_left_before_joined_ends_correct(
    client: httpx.AsyncClient, engine: AsyncEngine, meeting: Meeting
) -> None:
    await post_event(client, left(meeting, "p1", 0, 5))
    late = await post_event(client, joined(meeting, "p1", 1, 1))
    assert late.json()["status"] == "stale"
    assert await meeting_state(engine, meeting.id) == (0, {"p1": False})
    async with create_session_factory(engine)() as session:
        person = await session.scalar(select(Participant))
        assert person is not None
        assert person.joined_at is not None
        assert person.left_at is not None
        assert person.joined_at < person.left_at


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]])
async def test_any_delivery_order_ends_with_the_true_count(
    client: httpx.AsyncClient, engine: AsyncEngine, meeting: Meeting, order: list[int]
) -> None:
    story = [
        joined(meeting, "a", 1, 0),
        joined(meeting, "b", 2, 1),
        left(meeting, "a", 1, 2),
        joined(meeting, "c", 2, 3),
    ]
    for index in order:
        assert (await post_event(client, story[index])).status_code == 200
    assert await meeting_state(engine, meeting.id) == (2, {"a": False, "b": True, "c": True})


async def test_duplicate_delivery_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, meeting: Meeting
) -> None:
    first = joined(meeting, "p1", 1, 0, event_id="e" * 64)
    await post_event(client, first)
    await post_event(client, left(meeting, "p1", 0, 1))
    again = await post_event(client, first)
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "event_id": "e" * 64}
    assert await meeting_state(engine, meeting.id) == (0, {"p1": False})
    assert await count(engine, WebhookEvent) == 2
    async with create_session_factory(engine)() as session:
        stored = await session.get(WebhookEvent, "e" * 64)
        assert stored is not None
        assert stored.deliveries == 2
        assert stored.outcome == "applied"
        assert stored.meeting_id == meeting.id
        assert stored.payload == compact(first).decode()


async def stored_outcomes(engine: AsyncEngine) -> dict[str, str]:
    async with create_session_factory(engine)() as session:
        return dict((await session.execute(select(WebhookEvent.id, WebhookEvent.outcome))).all())


async def test_the_audit_log_keeps_each_events_outcome(
    client: httpx.AsyncClient, engine: AsyncEngine, meeting: Meeting
) -> None:
    story = [
        joined(meeting, "p1", 1, 0),
        left(meeting, "p1", 0, 5),
        # Older than the count and than p1's last event: nothing to apply.
        joined(meeting, "p1", 1, 1),
        # Older than the count, but p2's first event: p2 is recorded.
        joined(meeting, "p2", 1, 2),
    ]
    answers = [(await post_event(client, event)).json()["status"] for event in story]
    assert answers == ["applied", "applied", "stale", "applied"]
    outcomes = await stored_outcomes(engine)
    assert [outcomes[event["id"]] for event in story] == answers


async def test_an_event_overtaken_while_it_waits_is_stored_as_stale(
    client: httpx.AsyncClient, engine: AsyncEngine, meeting: Meeting
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time: nothing overtakes a waiting event")
    await post_event(client, joined(meeting, "p1", 1, 0))
    newer = BASE_TIME + timedelta(seconds=20)
    async with engine.connect() as other:
        # A newer event's writes, not yet committed: they hold the rows the next event needs.
        await other.execute(
            update(Meeting).where(Meeting.id == meeting.id).values(counts_event_at=newer)
        )
        await other.execute(
            update(Participant).where(Participant.meeting_id == meeting.id).values(state_at=newer)
        )
        waiting = asyncio.ensure_future(post_event(client, joined(meeting, "p1", 1, 10)))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await other.commit()
        answer = await waiting
    # Its statement saw the older rows and stored it as applied; the rows it got were newer.
    assert answer.json()["status"] == "stale"
    outcomes = await stored_outcomes(engine)
    assert outcomes[answer.json()["event_id"]] == "stale"


async def test_sessions_are_recorded(
    client: httpx.AsyncClient, engine: AsyncEngine, meeting: Meeting
) -> None:
    data = {
        "meetingId": meeting.platform_meeting_id,
        "roomName": meeting.platform_room_name,
        "roomSessionId": "s-1",
        "subdomain": "sandbox",
    }
    ended = await post_event(client, envelope("room.session.ended", data, created=60))
    started = await post_event(client, envelope("room.session.started", data, created=0))
    assert ended.json()["status"] == started.json()["status"] == "applied"
    async with create_session_factory(engine)() as session:
        row = await session.scalar(select(MeetingSession))
        assert row is not None
        assert row.session_id == "s-1"
        assert row.started_at is not None
        assert row.ended_at is not None
        assert row.started_at < row.ended_at


async def test_unknown_meeting_is_stored_as_unmatched(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event = client_event("joined", "999", "/nowhere-1", "p1", 1)
    response = await post_event(client, event)
    assert response.status_code == 200
    assert response.json()["status"] == "unmatched"
    async with create_session_factory(engine)() as session:
        stored = await session.get(WebhookEvent, event["id"])
        assert stored is not None
        assert stored.outcome == "unmatched"


@pytest.mark.parametrize(
    ("kind", "status"),
    [("room.client.knocked", "ignored"), ("recording.finished", "queued"), ("x.y", "ignored")],
)
async def test_other_event_types(client: httpx.AsyncClient, kind: str, status: str) -> None:
    data = {"roomName": "/standup-x", "participantId": "p", "filename": "f.mp4"}
    response = await post_event(client, envelope(kind, data))
    assert response.status_code == 200
    assert response.json()["status"] == status


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == code
    detail: str = body["detail"]
    return detail


async def test_verification_failures(
    client: httpx.AsyncClient, engine: AsyncEngine, meeting: Meeting
) -> None:
    body = compact(joined(meeting, "p1", 1, 0))
    now = int(time.time())

    missing = await client.post(URL, content=body, headers={"Content-Type": "application/json"})
    assert "Whereby-Signature" in _error(missing, 400, "missing_signature")

    malformed = await client.post(URL, content=body, headers={"Whereby-Signature": "v1=nothing"})
    _error(malformed, 400, "malformed_signature")

    changed = body.replace(b'"p1"', b'"p9"')
    tampered = await client.post(URL, content=changed, headers=signed_headers(body))
    assert "WHEREBY_WEBHOOK_SECRET" in _error(tampered, 401, "bad_signature")

    wrong_key = await client.post(URL, content=body, headers=signed_headers(body, secret="nope"))
    _error(wrong_key, 401, "bad_signature")

    for offset in (-120, 120):
        stale = await client.post(
            URL, content=body, headers=signed_headers(body, timestamp=now + offset)
        )
        _error(stale, 401, "signature_out_of_window")

    assert await meeting_state(engine, meeting.id) == (0, {})
    assert await count(engine, WebhookEvent) == 0
    assert await count(engine, WebhookRejection) == 6


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1,2]",
        b'{"id":"x"}',
        b'{"id":"e","createdAt":"yesterday","type":"room.client.joined","data":{}}',
        b'{"id":"e","createdAt":"2026-11-28T12:00:00","type":"room.client.joined","data":{}}',
        b'{"id":"e","createdAt":"2026-11-28T12:00:00.000Z","type":"room.client.joined","data":{}}',
        b'{"id":"e","createdAt":"2026-11-28T12:00:00.000Z","type":"room.client.joined",'
        b'"data":{"participantId":"p","numClients":"2"}}',
        b'{"id":"e","createdAt":"2026-11-28T12:00:00.000Z","type":"room.session.started",'
        b'"data":{"roomName":"/x"}}',
        b"\xff\xfe",
    ],
)
async def test_signed_but_unexpected_json_is_400(
    client: httpx.AsyncClient, engine: AsyncEngine, body: bytes
) -> None:
    response = await client.post(URL, content=body, headers=signed_headers(body))
    _error(response, 400, "invalid_payload")
    assert await count(engine, WebhookEvent) == 0


async def test_body_over_64_kib_is_413(client: httpx.AsyncClient) -> None:
    body = compact(envelope("room.client.knocked", {"pad": "x" * 70_000}))
    response = await client.post(URL, content=body, headers=signed_headers(body))
    _error(response, 413, "payload_too_large")


async def test_a_streamed_body_over_64_kib_is_413(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    body = compact(envelope("room.client.knocked", {"pad": "x" * 70_000}))

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the limit applies while the body streams in.
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = await client.post(URL, content=chunks(), headers=signed_headers(body))
    _error(response, 413, "payload_too_large")
    assert await count(engine, WebhookEvent) == 0


async def test_answers_carry_the_request_id_and_security_headers(
    client: httpx.AsyncClient, meeting: Meeting
) -> None:
    body = compact(joined(meeting, "p1", 1, 0))
    response = await client.post(
        URL, content=body, headers={**signed_headers(body), "X-Request-ID": "hook-1"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "hook-1"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_other_methods_on_the_webhook_path_are_405(client: httpx.AsyncClient) -> None:
    _error(await client.get(URL), 405, "method_not_allowed")


async def test_no_secret_configured_is_503(engine: AsyncEngine, tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), engine=engine, background=False)
    body = compact(envelope("room.client.knocked", {}))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(URL, content=body, headers=signed_headers(body))
    assert "WHEREBY_WEBHOOK_SECRET" in _error(response, 503, "webhook_secret_not_configured")


async def test_failed_verifications_are_rate_limited(engine: AsyncEngine, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, WHEREBY_WEBHOOK_SECRET="s", WEBHOOK_FAILED_REQUESTS_PER_MINUTE=3
    )
    app = create_app(settings, engine=engine, background=False)
    body = compact(envelope("room.client.knocked", {}))
    bad = {"Whereby-Signature": sign(body, "wrong", int(time.time()))}
    good = {"Whereby-Signature": sign(body, "s", int(time.time()))}
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            statuses = [
                (await client.post(URL, content=body, headers=bad)).status_code for _ in range(5)
            ]
            blocked = await client.post(URL, content=body, headers=good)
    assert statuses == [401, 401, 401, 429, 429]
    _error(blocked, 429, "rate_limited")
    assert blocked.headers["retry-after"] == "60"


async def test_verified_events_have_a_ceiling(engine: AsyncEngine, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, WHEREBY_WEBHOOK_SECRET="s", WEBHOOK_REQUESTS_PER_MINUTE=2)
    app = create_app(settings, engine=engine, background=False)
    statuses = []
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(3):
                body = compact(envelope("room.client.knocked", {}))
                headers = {"Whereby-Signature": sign(body, "s", int(time.time()))}
                statuses.append((await client.post(URL, content=body, headers=headers)).status_code)
    assert statuses == [200, 200, 429]


async def test_database_down_is_503_not_500(tmp_path: Path) -> None:
    from reflector.db.engine import create_engine

    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    app = create_app(
        make_settings(tmp_path, WHEREBY_WEBHOOK_SECRET="s"), engine=engine, background=False
    )
    body = compact(envelope("room.client.knocked", {}))
    headers = {"Whereby-Signature": sign(body, "s", int(time.time()))}
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(URL, content=body, headers=headers)
            wrong = await client.post(
                URL, content=body, headers={"Whereby-Signature": "t=1,v1=" + "0" * 64}
            )
    await engine.dispose()
    _error(response, 503, "database_unavailable")
    # A rejection still gets its own answer when the audit record cannot be written.
    _error(wrong, 401, "bad_signature")


async def test_whereby_health(client: httpx.AsyncClient, meeting: Meeting) -> None:
    await post_event(client, joined(meeting, "p1", 1, 0))
    await client.post(URL, content=b"{}", headers={"Whereby-Signature": "t=1,v1=" + "0" * 64})
    response = await client.get("/v1/whereby/health")
    assert response.status_code == 200
    health = response.json()
    assert health["api_key_configured"] is False
    assert health["webhook_secret_configured"] is True
    assert health["api_status"] == "not_configured"
    assert health["accepted_24h"] == 1
    assert health["rejected_24h"] == 1
    assert health["rejected_24h_by_reason"] == {"bad_signature": 1}
    assert health["last_verified_event_at"] is not None
    assert "whsec" not in response.text


async def test_the_recorder_is_not_a_person(
    client: httpx.AsyncClient, engine: AsyncEngine, meeting: Meeting
) -> None:
    await post_event(client, joined(meeting, "p1", 1, 0))
    await post_event(client, joined(meeting, "p2", 2, 1))
    recorder = joined(meeting, "rec", 3, 2, role="recorder")
    recorder["data"]["numClientsByRoleName"] = {"visitor": 2, "recorder": 1}
    await post_event(client, recorder)
    count, present = await meeting_state(engine, meeting.id)
    assert count == 2
    assert present == {"p1": True, "p2": True, "rec": True}
    async with create_session_factory(engine)() as session:
        stored = await session.get(Meeting, meeting.id)
        assert stored is not None
        assert stored.num_clients_by_role == {"visitor": 2, "recorder": 1}


async def test_limits_shared_through_redis(engine: AsyncEngine, tmp_path: Path) -> None:
    """With REDIS_URL, two app instances (replicas) share one failure budget."""
    import redis.asyncio as aioredis

    url = "redis://127.0.0.1:6379/13"
    probe = aioredis.from_url(url)
    try:
        await probe.flushdb()
    except OSError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis unreachable at {url}: {exc}")
    finally:
        await probe.aclose()
    settings = make_settings(
        tmp_path, WHEREBY_WEBHOOK_SECRET="s", WEBHOOK_FAILED_REQUESTS_PER_MINUTE=2, REDIS_URL=url
    )
    body = compact(envelope("room.client.knocked", {}))
    bad = {"Whereby-Signature": sign(body, "wrong", int(time.time()))}
    statuses = []
    for _ in range(2):
        app = create_app(settings, engine=engine, background=False)
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for _ in range(2):
                    response = await client.post(URL, content=body, headers=bad)
                    statuses.append(response.status_code)
    assert statuses == [401, 401, 429, 429]
