"""Meetings through the API, with the platform faked at its Protocol seam."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db.base import utcnow
from reflector.db.engine import create_session_factory
from reflector.meetings.models import Meeting, MeetingClaim
from reflector.platforms.base import VideoPlatform
from reflector.platforms.whereby.platform import WherebyPlatform
from reflector.settings import Settings
from tests.conftest import Account
from tests.fakes.platform import FakePlatform
from tests.webhooks.whereby_events import client_event, compact, signed_headers


@pytest.fixture
def fake(settings: Settings) -> FakePlatform:
    return FakePlatform(WherebyPlatform(settings, httpx.AsyncClient()), create_delay=0.2)


@pytest.fixture
def platforms(fake: FakePlatform) -> dict[str, VideoPlatform]:
    return {"whereby": fake}


async def make_room(client: httpx.AsyncClient, account: Account, **fields: Any) -> dict[str, Any]:
    body = {"name": "my-whereby-room", **fields}
    response = await client.post("/v1/rooms", json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    room: dict[str, Any] = response.json()
    return room


async def test_first_call_creates_then_reuses(
    client: httpx.AsyncClient, alice: Account, fake: FakePlatform
) -> None:
    room = await make_room(client, alice, recording_type="local", is_locked=True, room_mode="group")
    first = await client.post("/v1/rooms/my-whereby-room/meeting", headers=alice.headers)
    assert first.status_code == 201, first.text
    meeting = first.json()
    assert meeting["room_url"].startswith("https://fake.whereby.test/my-whereby-room-")
    assert meeting["host_room_url"].endswith("?roomKey=host")
    assert meeting["room_id"] == room["id"]
    assert meeting["is_active"] is True
    assert meeting["num_clients"] == 0
    assert meeting["room_settings"]["recording_type"] == "local"
    assert meeting["room_settings"]["room_mode"] == "group"
    request = fake.created[0]
    assert request.room_name == "my-whereby-room"
    assert request.is_locked is True
    assert request.recording_type == "local"
    assert request.recording_trigger == "automatic-2nd-participant"
    hours = (request.end_date - utcnow()).total_seconds() / 3600
    assert 7.9 < hours <= 8.0

    again = await client.post(f"/v1/rooms/{room['id']}/meeting", headers=alice.headers)
    assert again.status_code == 200
    assert again.json()["id"] == meeting["id"]
    assert len(fake.created) == 1


async def test_simultaneous_calls_create_one_meeting(
    client: httpx.AsyncClient, alice: Account, fake: FakePlatform, engine: AsyncEngine
) -> None:
    await make_room(client, alice)
    responses = await asyncio.gather(
        *[client.post("/v1/rooms/my-whereby-room/meeting", headers=alice.headers) for _ in range(5)]
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(fake.created) == 1
    async with create_session_factory(engine)() as session:
        assert await session.scalar(select(func.count()).select_from(Meeting)) == 1
        assert await session.scalar(select(func.count()).select_from(MeetingClaim)) == 0


async def test_a_claim_left_by_a_dead_request_is_taken_over(
    client: httpx.AsyncClient, alice: Account, fake: FakePlatform, engine: AsyncEngine
) -> None:
    room = await make_room(client, alice)
    async with create_session_factory(engine)() as session:
        session.add(
            MeetingClaim(
                room_id=room["id"], claim_id="clm_dead", claimed_at=utcnow() - timedelta(minutes=5)
            )
        )
        await session.commit()
    response = await client.post("/v1/rooms/my-whereby-room/meeting", headers=alice.headers)
    assert response.status_code == 201
    assert len(fake.created) == 1


async def test_an_expired_meeting_is_replaced(
    client: httpx.AsyncClient, alice: Account, fake: FakePlatform, engine: AsyncEngine
) -> None:
    await make_room(client, alice)
    old = (await client.post("/v1/rooms/my-whereby-room/meeting", headers=alice.headers)).json()
    async with create_session_factory(engine)() as session:
        await session.execute(
            update(Meeting).where(Meeting.id == old["id"]).values(end_date=utcnow())
        )
        await session.commit()
    new = await client.post("/v1/rooms/my-whereby-room/meeting", headers=alice.headers)
    assert new.status_code == 201
    assert new.json()["id"] != old["id"]
    previous = (await client.get(f"/v1/meetings/{old['id']}", headers=alice.headers)).json()
    assert previous["is_active"] is False
    assert previous["end_reason"] == "expired"
    listing = await client.get("/v1/rooms/my-whereby-room/meetings", headers=alice.headers)
    assert [m["id"] for m in listing.json()["items"]] == [new.json()["id"], old["id"]]
    page = await client.get(
        "/v1/rooms/my-whereby-room/meetings", params={"limit": 1}, headers=alice.headers
    )
    assert page.json()["next_cursor"]
    second = await client.get(
        "/v1/rooms/my-whereby-room/meetings",
        params={"limit": 1, "cursor": page.json()["next_cursor"]},
        headers=alice.headers,
    )
    assert [m["id"] for m in second.json()["items"]] == [old["id"]]


async def test_participants_show_in_the_meeting(client: httpx.AsyncClient, alice: Account) -> None:
    await make_room(client, alice)
    meeting = (await client.post("/v1/rooms/my-whereby-room/meeting", headers=alice.headers)).json()
    for index, (who, name) in enumerate([("p1", "Ada"), ("p2", "Grace")]):
        event = client_event(
            "joined",
            meeting["platform_meeting_id"],
            meeting["platform_room_name"],
            who,
            index + 1,
            created=index,
            name=name,
        )
        body = compact(event)
        assert (
            await client.post("/v1/whereby", content=body, headers=signed_headers(body))
        ).status_code == 200
    details = (await client.get(f"/v1/meetings/{meeting['id']}", headers=alice.headers)).json()
    assert details["num_clients"] == 2
    assert {p["display_name"] for p in details["participants"] if p["present"]} == {"Ada", "Grace"}


async def test_end_meeting(client: httpx.AsyncClient, alice: Account, fake: FakePlatform) -> None:
    await make_room(client, alice)
    meeting = (await client.post("/v1/rooms/my-whereby-room/meeting", headers=alice.headers)).json()
    ended = await client.post(f"/v1/meetings/{meeting['id']}/end", headers=alice.headers)
    assert ended.status_code == 200
    assert ended.json()["is_active"] is False
    assert ended.json()["end_reason"] == "ended_by_owner"
    assert fake.ended == [meeting["platform_meeting_id"]]
    fresh = await client.post("/v1/rooms/my-whereby-room/meeting", headers=alice.headers)
    assert fresh.status_code == 201


async def test_other_users_get_404(
    client: httpx.AsyncClient, alice: Account, bob: Account, fake: FakePlatform
) -> None:
    await make_room(client, alice)
    meeting = (await client.post("/v1/rooms/my-whereby-room/meeting", headers=alice.headers)).json()
    for method, path in [
        ("POST", "/v1/rooms/my-whereby-room/meeting"),
        ("GET", "/v1/rooms/my-whereby-room/meetings"),
        ("GET", f"/v1/meetings/{meeting['id']}"),
        ("POST", f"/v1/meetings/{meeting['id']}/end"),
    ]:
        response = await client.request(method, path, headers=bob.headers)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"] == "not_found"
    assert len(fake.created) == 1
    assert fake.ended == []
    unknown = await client.get("/v1/meetings/mtg_nope", headers=alice.headers)
    assert unknown.status_code == 404


async def test_meetings_need_a_token(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("POST", "/v1/rooms/x/meeting"),
        ("GET", "/v1/rooms/x/meetings"),
        ("GET", "/v1/meetings/mtg_x"),
    ]:
        assert (await client.request(method, path)).status_code == 401
