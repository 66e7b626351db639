from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db.engine import create_session_factory
from reflector.meetings.lifecycle import close_finished_meetings
from reflector.meetings.models import Meeting
from reflector.platforms.base import PlatformSession, VideoPlatform
from reflector.platforms.whereby.platform import WherebyPlatform
from reflector.settings import Settings
from tests.conftest import Account
from tests.factories import make_meeting
from tests.fakes.platform import FakePlatform

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


@pytest.fixture
def fake(settings: Settings) -> FakePlatform:
    return FakePlatform(WherebyPlatform(settings, httpx.AsyncClient()))


async def set_meeting(engine: AsyncEngine, meeting_id: str, **values: object) -> None:
    async with create_session_factory(engine)() as session:
        meeting = await session.get(Meeting, meeting_id)
        assert meeting is not None
        for key, value in values.items():
            setattr(meeting, key, value)
        await session.commit()


async def run(
    engine: AsyncEngine, platforms: dict[str, VideoPlatform], now: datetime
) -> list[tuple[str, str]]:
    async with create_session_factory(engine)() as session:
        closed = await close_finished_meetings(session, platforms, now)
        await session.commit()
        return closed


async def test_lifecycle(engine: AsyncEngine, alice: Account, fake: FakePlatform) -> None:
    meeting = await make_meeting(engine, alice)
    platforms: dict[str, VideoPlatform] = {"whereby": fake}
    await set_meeting(engine, meeting.id, end_date=NOW + timedelta(hours=1), num_clients=2)
    room = meeting.platform_room_name

    # People in the room: nothing ends, whatever the platform says.
    fake.sessions[room] = [PlatformSession("s1", NOW, NOW)]
    assert await run(engine, platforms, NOW) == []

    # Empty, but no session yet (nobody has come): still open.
    await set_meeting(engine, meeting.id, num_clients=0)
    fake.sessions[room] = []
    assert await run(engine, platforms, NOW) == []

    # A session still running: open.
    fake.sessions[room] = [PlatformSession("s1", NOW, None)]
    assert await run(engine, platforms, NOW) == []

    # The platform cannot be asked: no guess, still open.
    fake.fail_sessions = True
    assert await run(engine, platforms, NOW) == []
    fake.fail_sessions = False

    # Every session ended and nobody left: the meeting ends.
    fake.sessions[room] = [PlatformSession("s1", NOW, NOW + timedelta(minutes=5))]
    assert await run(engine, platforms, NOW) == [(meeting.id, "sessions_ended")]
    assert await run(engine, platforms, NOW) == []


async def test_past_end_date_and_empty_ends(
    engine: AsyncEngine, alice: Account, fake: FakePlatform
) -> None:
    meeting = await make_meeting(engine, alice)
    platforms: dict[str, VideoPlatform] = {"whereby": fake}
    await set_meeting(engine, meeting.id, end_date=NOW - timedelta(minutes=1), num_clients=1)
    assert await run(engine, platforms, NOW) == []
    await set_meeting(engine, meeting.id, num_clients=0)
    assert await run(engine, platforms, NOW) == [(meeting.id, "expired")]
    async with create_session_factory(engine)() as session:
        stored = await session.get(Meeting, meeting.id)
        assert stored is not None
        assert stored.is_active is False
        assert stored.ended_at == NOW
