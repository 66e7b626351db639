"""Rows the tests need, made directly in the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db.base import utcnow
from reflector.db.engine import create_session_factory
from reflector.meetings.models import Meeting
from reflector.rooms.models import RecordingTrigger, RecordingType, Room, RoomMode
from tests.conftest import Account


def room_row(owner_id: str, name: str = "standup", **fields: Any) -> Room:
    """A Whereby room with the API's default settings; `fields` override or add to them."""
    values: dict[str, Any] = {
        "platform": "whereby",
        "recording_type": RecordingType.cloud,
        "recording_trigger": RecordingTrigger.automatic_2nd_participant,
        "is_locked": False,
        "room_mode": RoomMode.normal,
    }
    return Room(name=name, owner_id=owner_id, **(values | fields))


async def make_room(
    engine: AsyncEngine, owner_id: str, name: str = "standup", **fields: Any
) -> Room:
    """`room_row`, stored."""
    async with create_session_factory(engine)() as session:
        room = room_row(owner_id, name, **fields)
        session.add(room)
        await session.commit()
        return room


async def make_meeting(engine: AsyncEngine, account: Account) -> Meeting:
    """A room of `account` with an active Whereby meeting, as if created through the API."""
    factory = create_session_factory(engine)
    async with factory() as session:
        room = room_row(account.user_id)
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
