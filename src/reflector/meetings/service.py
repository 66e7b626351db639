"""Meetings: the room's active meeting, created once through its platform, and reads."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reflector.auth.models import User
from reflector.db.base import new_id, utcnow
from reflector.errors import NotFound, ServiceUnavailable
from reflector.meetings.models import Meeting, MeetingClaim, MeetingSession, Participant
from reflector.meetings.schemas import MeetingOut
from reflector.pagination import keyset_page
from reflector.platforms.base import MeetingRequest, VideoPlatform
from reflector.room_webhooks.outbox import enqueue_meeting_ended
from reflector.rooms.models import Room

# A claim older than this belongs to a request that died; it may be taken over.
CLAIM_TTL = timedelta(seconds=60)
_CLAIM_POLL_SECONDS = 0.05
_CLAIM_WAIT_SECONDS = 45.0


def room_settings(room: Room) -> dict[str, object]:
    return {
        "name": room.name,
        "platform": room.platform,
        "recording_type": room.recording_type.value,
        "recording_trigger": room.recording_trigger.value,
        "is_locked": room.is_locked,
        "room_mode": room.room_mode.value,
    }


async def reusable_meeting(session: AsyncSession, room_id: str, now: datetime) -> Meeting | None:
    """The room's active meeting, if it still has time to run."""
    return await session.scalar(
        select(Meeting).where(
            Meeting.room_id == room_id, Meeting.is_active.is_(True), Meeting.end_date > now
        )
    )


async def _claim(session: AsyncSession, room_id: str, claim_id: str, now: datetime) -> bool:
    """Take the room's creation claim; False when another live request holds it."""
    for _ in range(2):
        session.add(MeetingClaim(room_id=room_id, claim_id=claim_id, claimed_at=now))
        try:
            await session.commit()
            return True
        except IntegrityError:
            await session.rollback()
        # A claim older than CLAIM_TTL was left by a request that died: remove it, try again.
        stale = await session.execute(
            delete(MeetingClaim)
            .where(MeetingClaim.room_id == room_id, MeetingClaim.claimed_at < now - CLAIM_TTL)
            .returning(MeetingClaim.room_id)
        )
        removed = stale.first() is not None
        await session.commit()
        if not removed:
            return False
    return False


async def ensure_meeting(
    factory: async_sessionmaker[AsyncSession],
    platform: VideoPlatform,
    room_id: str,
    *,
    meeting_hours: float,
) -> tuple[Meeting, bool]:
    """The room's active meeting, creating it through the platform when there is none.

    Concurrent callers, on any replica, make one platform call: the first takes a claim row
    and the others wait for its meeting. This commits on its own sessions, because the claim
    must be visible to other requests before the (slow) platform call.
    """
    claim_id = new_id("clm")
    deadline = time.monotonic() + _CLAIM_WAIT_SECONDS
    while True:
        async with factory() as session:
            meeting = await reusable_meeting(session, room_id, utcnow())
            if meeting is not None:
                return meeting, False
            if await _claim(session, room_id, claim_id, utcnow()):
                break
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                "Another request is still creating this room's meeting; try again shortly."
            )
        await asyncio.sleep(_CLAIM_POLL_SECONDS)
    try:
        async with factory() as session:
            now = utcnow()
            meeting = await reusable_meeting(session, room_id, now)
            if meeting is not None:
                return meeting, False
            room = await session.get(Room, room_id)
            if room is None:
                raise NotFound("The room was deleted while its meeting was being created.")
            created = await platform.create_meeting(
                MeetingRequest(
                    room_name=room.name,
                    recording_type=room.recording_type.value,
                    recording_trigger=room.recording_trigger.value,
                    is_locked=room.is_locked,
                    room_mode=room.room_mode.value,
                    end_date=now + timedelta(hours=meeting_hours),
                )
            )
            # A meeting past its end date may still be marked active; it makes way, and the
            # room's webhook hears that it ended, as from the lifecycle.
            stale = await session.scalars(
                select(Meeting).where(Meeting.room_id == room_id, Meeting.is_active.is_(True))
            )
            for old in list(stale):
                mark_ended(old, "expired", now)
                await enqueue_meeting_ended(session, old, now)
            meeting = Meeting(
                room_id=room_id,
                platform=platform.name,
                platform_meeting_id=created.platform_meeting_id,
                platform_room_name=created.room_name,
                room_url=created.room_url,
                host_room_url=created.host_room_url,
                start_date=created.start_date,
                end_date=created.end_date,
                room_settings=room_settings(room),
                num_clients=0,
                num_clients_by_role={},
                is_active=True,
            )
            session.add(meeting)
            await session.commit()
            return meeting, True
    finally:
        async with factory() as session:
            await session.execute(
                delete(MeetingClaim).where(
                    MeetingClaim.room_id == room_id, MeetingClaim.claim_id == claim_id
                )
            )
            await session.commit()


async def meeting_details(
    session: AsyncSession, meeting: Meeting, room_name: str, *, is_owner: bool
) -> MeetingOut:
    participants = list(
        await session.scalars(
            select(Participant)
            .where(Participant.meeting_id == meeting.id)
            .order_by(Participant.joined_at, Participant.id)
        )
    )
    sessions = list(
        await session.scalars(
            select(MeetingSession)
            .where(MeetingSession.meeting_id == meeting.id)
            .order_by(MeetingSession.started_at, MeetingSession.id)
        )
    )
    return MeetingOut.build(
        meeting,
        room_name=room_name,
        participants=participants,
        sessions=sessions,
        is_owner=is_owner,
    )


async def get_owned_meeting(
    session: AsyncSession, owner: User, meeting_id: str
) -> tuple[Meeting, Room]:
    row = (
        await session.execute(
            select(Meeting, Room)
            .join(Room, Room.id == Meeting.room_id)
            .where(Meeting.id == meeting_id, Room.owner_id == owner.id)
        )
    ).first()
    if row is None:
        raise NotFound(f"No meeting '{meeting_id}' in your rooms.")
    return row[0], row[1]


async def list_room_meetings(
    session: AsyncSession, room: Room, *, limit: int, cursor: str | None
) -> tuple[list[Meeting], str | None]:
    """Newest first."""
    query = select(Meeting).where(Meeting.room_id == room.id)
    return await keyset_page(session, query, Meeting, limit=limit, cursor=cursor, newest_first=True)


def mark_ended(meeting: Meeting, reason: str, now: datetime | None = None) -> None:
    meeting.is_active = False
    meeting.ended_at = now or utcnow()
    meeting.end_reason = reason
