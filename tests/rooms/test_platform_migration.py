"""Moving rooms to another platform: PATCH /v1/rooms/{ref} with a new `platform`, and
`reflector rooms migrate-platform`. Active meetings end on the old platform (when it is still
registered and answers) and here, with reason "platform_migrated"."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from reflector.auth import service as auth
from reflector.cli import app as cli_app
from reflector.db.base import utcnow
from reflector.db.engine import create_engine, create_session_factory
from reflector.meetings.models import Meeting
from reflector.platforms.base import VideoPlatform
from reflector.platforms.whereby.platform import WherebyPlatform
from reflector.room_webhooks.models import WebhookDelivery
from reflector.rooms.models import Room
from reflector.rooms.platform_migration import END_REASON, migrate_platform
from reflector.settings import Settings
from tests.conftest import Account, run_async
from tests.factories import room_row
from tests.fakes.platform import FakePlatform


class FailingPlatform(FakePlatform):
    """The old platform, down: ending a meeting there fails."""

    async def end_meeting(self, platform_meeting_id: str) -> None:
        self.ended.append(platform_meeting_id)
        raise RuntimeError("legacy platform unreachable")


def _fake(settings: Settings, name: str, cls: type[FakePlatform] = FakePlatform) -> FakePlatform:
    platform = cls(WherebyPlatform(settings, httpx.AsyncClient()))
    platform.name = name
    return platform


@pytest.fixture
def legacy(settings: Settings) -> FakePlatform:
    return _fake(settings, "legacy")


@pytest.fixture
def whereby(settings: Settings) -> FakePlatform:
    return _fake(settings, "whereby")


@pytest.fixture
def platforms(legacy: FakePlatform, whereby: FakePlatform) -> dict[str, VideoPlatform]:
    return {"whereby": whereby, "legacy": legacy}


async def insert_room(
    engine: AsyncEngine, owner_id: str, name: str, platform: str, *, meetings: list[bool]
) -> str:
    """A room on `platform` with one meeting per entry of `meetings` (True: active; at most
    one), inserted directly: "legacy" is not a platform the API would accept."""
    async with create_session_factory(engine)() as session:
        room = room_row(owner_id, name, platform=platform)
        session.add(room)
        await session.flush()
        for number, active in enumerate(meetings):
            session.add(
                Meeting(
                    room_id=room.id,
                    platform=platform,
                    platform_meeting_id=f"{name}-{number}",
                    platform_room_name=f"/{name}-{number}",
                    room_url=f"https://{platform}.test/{name}-{number}",
                    host_room_url=None,
                    start_date=utcnow() - timedelta(hours=1),
                    end_date=utcnow() + timedelta(hours=1),
                    room_settings={},
                    num_clients=1,
                    num_clients_by_role={},
                    is_active=active,
                    ended_at=None if active else utcnow() - timedelta(minutes=30),
                    end_reason=None if active else "expired",
                )
            )
        await session.commit()
        return room.id


async def snapshot(engine: AsyncEngine) -> dict[str, Any]:
    """What a migration changes: rooms' platforms and meetings' state."""
    async with engine.connect() as conn:
        rooms = (await conn.execute(select(Room.id, Room.platform, Room.updated_at))).all()
        meetings = (
            await conn.execute(
                select(Meeting.id, Meeting.is_active, Meeting.ended_at, Meeting.end_reason)
            )
        ).all()
    return {
        "rooms": sorted(tuple(row) for row in rooms),
        "meetings": sorted(tuple(row) for row in meetings),
    }


async def meetings_of(engine: AsyncEngine, room_id: str) -> dict[str, tuple[bool, str | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Meeting.platform_meeting_id, Meeting.is_active, Meeting.end_reason).where(
                Meeting.room_id == room_id
            )
        )
        return {row[0]: (row[1], row[2]) for row in rows}


# --- PATCH /v1/rooms/{ref} ---------------------------------------------------------------------


async def test_patch_ends_the_active_meeting_on_the_old_platform(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    alice: Account,
    legacy: FakePlatform,
    whereby: FakePlatform,
) -> None:
    await insert_room(engine, alice.user_id, "standup", "legacy", meetings=[])
    first = await client.post("/v1/rooms/standup/meeting", headers=alice.headers)
    assert first.status_code == 201, first.text
    assert first.json()["platform"] == "legacy"

    # Other fields change nothing on the platform; a platform not registered is refused.
    locked = await client.patch(
        "/v1/rooms/standup", json={"is_locked": True}, headers=alice.headers
    )
    assert locked.status_code == 200, locked.text
    unknown = await client.patch(
        "/v1/rooms/standup", json={"platform": "zoom"}, headers=alice.headers
    )
    assert unknown.status_code == 422
    assert "unknown platform 'zoom'" in unknown.json()["detail"]
    assert legacy.ended == []

    moved = await client.patch(
        "/v1/rooms/standup", json={"platform": "whereby"}, headers=alice.headers
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["platform"] == "whereby"
    assert moved.json()["is_locked"] is True
    assert legacy.ended == [first.json()["platform_meeting_id"]]

    ended = await client.get(f"/v1/meetings/{first.json()['id']}", headers=alice.headers)
    assert ended.json()["is_active"] is False
    assert ended.json()["end_reason"] == END_REASON == "platform_migrated"
    # The next meeting is the new platform's.
    second = await client.post("/v1/rooms/standup/meeting", headers=alice.headers)
    assert second.status_code == 201, second.text
    assert second.json()["platform"] == "whereby"
    assert len(whereby.created) == 1
    assert whereby.ended == []


@pytest.fixture
def failing_legacy(settings: Settings) -> FakePlatform:
    return _fake(settings, "legacy", FailingPlatform)


async def test_patch_when_the_old_platform_fails(
    client: httpx.AsyncClient,
    platforms: dict[str, VideoPlatform],
    engine: AsyncEngine,
    alice: Account,
    failing_legacy: FakePlatform,
    capsys: pytest.CaptureFixture[str],
) -> None:
    platforms["legacy"] = failing_legacy  # the app's own dict
    room_id = await insert_room(engine, alice.user_id, "standup", "legacy", meetings=[True])
    moved = await client.patch(
        "/v1/rooms/standup", json={"platform": "whereby"}, headers=alice.headers
    )
    assert moved.status_code == 200, moved.text
    assert failing_legacy.ended == ["standup-0"]
    assert await meetings_of(engine, room_id) == {"standup-0": (False, END_REASON)}
    captured = capsys.readouterr()
    log = captured.out + captured.err
    assert "could not end the meeting on its old platform" in log
    assert "legacy platform unreachable" in log


async def test_patch_is_scoped_to_the_owner(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account, bob: Account
) -> None:
    room_id = await insert_room(engine, alice.user_id, "standup", "legacy", meetings=[True])
    refused = await client.patch(
        f"/v1/rooms/{room_id}", json={"platform": "whereby"}, headers=bob.headers
    )
    assert refused.status_code == 404
    assert await meetings_of(engine, room_id) == {"standup-0": (True, None)}


# --- migrate_platform, on both databases -------------------------------------------------------


async def test_migrate_platform_from_an_unregistered_platform(
    engine: AsyncEngine, alice: Account, whereby: FakePlatform
) -> None:
    busy = await insert_room(engine, alice.user_id, "busy", "legacy", meetings=[False, True])
    idle = await insert_room(engine, alice.user_id, "idle", "legacy", meetings=[False])
    other = await insert_room(engine, alice.user_id, "other", "whereby", meetings=[True])
    before = await snapshot(engine)

    async with create_session_factory(engine)() as session:
        dry = await migrate_platform(
            session, "legacy", "whereby", {"whereby": whereby}, dry_run=True
        )
    assert await snapshot(engine) == before
    assert [m.room_name for m in dry] == ["busy", "idle"]
    assert [len(m.meetings) for m in dry] == [1, 0]

    async with create_session_factory(engine)() as session:
        done = await migrate_platform(session, "legacy", "whereby", {"whereby": whereby})
    assert [(m.room_id, len(m.meetings)) for m in done] == [(busy, 1), (idle, 0)]
    assert not done[0].meetings[0].on_platform
    assert whereby.ended == []
    assert await meetings_of(engine, busy) == {
        "busy-0": (False, "expired"),
        "busy-1": (False, END_REASON),
    }
    assert await meetings_of(engine, other) == {"other-0": (True, None)}
    async with engine.connect() as conn:
        platforms = dict((await conn.execute(select(Room.id, Room.platform))).all())
    assert platforms == {busy: "whereby", idle: "whereby", other: "whereby"}


# --- reflector rooms migrate-platform ----------------------------------------------------------


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CliRunner, str]:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("WHEREBY_API_KEY", raising=False)
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}"
    runner = CliRunner(env={"DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": url})
    result = runner.invoke(cli_app, ["--env-file", str(tmp_path / "absent.env"), "migrate"])
    assert result.exit_code == 0, result.output
    return runner, url


def invoke(runner: CliRunner, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli_app, ["--env-file", str(tmp_path / "absent.env"), *args])
    return result.exit_code, result.stdout, result.stderr


async def _seed(url: str) -> dict[str, str]:
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            owner = await auth.create_user(session, "ops@example.com")
            await session.commit()
        return {
            "busy": await insert_room(engine, owner.id, "busy", "legacy", meetings=[True]),
            "idle": await insert_room(engine, owner.id, "idle", "legacy", meetings=[]),
            "other": await insert_room(engine, owner.id, "other", "whereby", meetings=[True]),
        }
    finally:
        await engine.dispose()


async def _snapshot(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        return await snapshot(engine)
    finally:
        await engine.dispose()


def test_cli_dry_run_then_migrate(cli_database: tuple[CliRunner, str], tmp_path: Path) -> None:
    runner, url = cli_database
    rooms = run_async(_seed(url))
    before = run_async(_snapshot(url))

    code, out, err = invoke(
        runner, tmp_path, "rooms", "migrate-platform", "--from", "legacy", "--to", "whereby",
        "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"would move room busy ({rooms['busy']}) from legacy to whereby")
    assert "would end 1 active meeting(s)" in lines[0]
    assert "only here: not ended on legacy" in lines[0]
    assert (
        lines[1]
        == f"would move room idle ({rooms['idle']}) from legacy to whereby; no active meeting"
    )
    assert lines[2] == (
        "dry run: would move 2 room(s) and end 1 active meeting(s); nothing was changed"
    )
    assert len(lines) == 3
    assert run_async(_snapshot(url)) == before

    code, out, err = invoke(
        runner, tmp_path, "rooms", "migrate-platform", "--from", "legacy", "--to", "whereby"
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"moved room busy ({rooms['busy']}) from legacy to whereby")
    assert lines[-1] == "moved 2 room(s) and ended 1 active meeting(s)"
    after = run_async(_snapshot(url))
    assert {platform for _id, platform, _at in after["rooms"]} == {"whereby"}
    assert sorted((active, reason) for _id, active, _at, reason in after["meetings"]) == [
        (False, END_REASON),
        (True, None),
    ]

    # Nothing left on legacy: a second run moves nothing.
    code, out, _ = invoke(
        runner, tmp_path, "rooms", "migrate-platform", "--from", "legacy", "--to", "whereby"
    )
    assert code == 0
    assert out.strip() == "moved 0 room(s) and ended 0 active meeting(s)"


def test_cli_refuses_an_unregistered_target(
    cli_database: tuple[CliRunner, str], tmp_path: Path
) -> None:
    runner, url = cli_database
    run_async(_seed(url))
    before = run_async(_snapshot(url))
    code, _, err = invoke(
        runner, tmp_path, "rooms", "migrate-platform", "--from", "whereby", "--to", "zoom"
    )
    assert code == 2
    assert "--to 'zoom' is not a registered platform; registered: whereby" in err
    code, _, err = invoke(
        runner, tmp_path, "rooms", "migrate-platform", "--from", "whereby", "--to", "whereby"
    )
    assert code == 2
    assert "nothing to move" in err
    assert run_async(_snapshot(url)) == before


async def ended_events(engine: AsyncEngine) -> list[tuple[str, str]]:
    """(meeting id, end reason) of every meeting.ended delivery enqueued."""
    async with engine.connect() as conn:
        payloads = (
            await conn.scalars(
                select(WebhookDelivery.payload).where(WebhookDelivery.event == "meeting.ended")
            )
        ).all()
    meetings = [json.loads(payload)["data"]["meeting"] for payload in payloads]
    return sorted((meeting["id"], meeting["end_reason"]) for meeting in meetings)


async def test_meetings_ended_here_send_meeting_ended(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    """Every way Reflector itself ends a meeting (its owner, a platform move, a new meeting
    replacing one past its end date) tells the room's webhook, like the lifecycle's expiry
    does (tests/room_webhooks/test_events.py)."""
    await insert_room(engine, alice.user_id, "standup", "legacy", meetings=[])
    hooked = await client.patch(
        "/v1/rooms/standup",
        json={"webhook_url": "http://127.0.0.1:9/hook"},
        headers=alice.headers,
    )
    assert hooked.status_code == 200, hooked.text
    first = await client.post("/v1/rooms/standup/meeting", headers=alice.headers)
    ended = await client.post(f"/v1/meetings/{first.json()['id']}/end", headers=alice.headers)
    assert ended.status_code == 200, ended.text
    second = await client.post("/v1/rooms/standup/meeting", headers=alice.headers)
    moved = await client.patch(
        "/v1/rooms/standup", json={"platform": "whereby"}, headers=alice.headers
    )
    assert moved.status_code == 200, moved.text
    # A meeting past its end date, still marked active, makes way for the next one.
    third = await client.post("/v1/rooms/standup/meeting", headers=alice.headers)
    async with create_session_factory(engine)() as session:
        past = await session.get(Meeting, third.json()["id"])
        assert past is not None
        past.end_date = utcnow() - timedelta(minutes=1)
        await session.commit()
    fourth = await client.post("/v1/rooms/standup/meeting", headers=alice.headers)
    assert fourth.json()["id"] != third.json()["id"]
    assert await ended_events(engine) == sorted(
        [
            (first.json()["id"], "ended_by_owner"),
            (second.json()["id"], END_REASON),
            (third.json()["id"], "expired"),
        ]
    )
