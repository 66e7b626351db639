"""Rows the tests need, made directly in the database."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db.base import utcnow
from reflector.db.engine import create_session_factory
from reflector.meetings.models import Meeting
from reflector.rooms.models import RecordingTrigger, RecordingType, Room, RoomMode
from tests.conftest import Account


async def make_meeting(engine: AsyncEngine, account: Account) -> Meeting:
    """A room of `account` with an active Whereby meeting, as if created through the API."""
    factory = create_session_factory(engine)
    async with factory() as session:
        room = Room(
            name="standup",
            owner_id=account.user_id,
            platform="whereby",
            recording_type=RecordingType.cloud,
            recording_trigger=RecordingTrigger.automatic_2nd_participant,
            is_locked=False,
            room_mode=RoomMode.normal,
        )
        session.add(room)
        await session.flush()
        meeting = Meeting(
            room_id=room.id,
            platform="whereby",
            platform_meeting_id="87673375",
            platform_room_name="/standup-0b1fbe30-2346-4681-85a5-f309f11e509f",
            room_url="https://sandbox.whereby.com/standup-0b1fbe30-2346-4681-85a5-f309f11e509f",
            host_room_url=None,
            start_date=utcnow(),
            end_date=utcnow(),
            room_settings={},
            num_clients=0,
            num_clients_by_role={},
            is_active=True,
        )
        session.add(meeting)
        await session.commit()
        return meeting
