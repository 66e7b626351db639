"""Enqueueing events: one delivery row per event of a room that has a webhook URL.

The row is written in the caller's transaction (the one that marks the recording completed,
or the meeting ended), so an event is sent if and only if what it reports was committed; the
dispatcher sends it afterwards. Rooms without a webhook URL get no rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from reflector.db.base import new_id
from reflector.logs import get_logger
from reflector.meetings.models import Meeting, Participant
from reflector.pipeline.types import TranscriptDocument
from reflector.platforms.whereby.events import BOT_ROLES
from reflector.room_webhooks import payloads
from reflector.room_webhooks.models import DeliveryStatus, WebhookDelivery
from reflector.rooms.models import Room
from reflector.transcripts.models import Transcript

_log = get_logger("reflector.room_webhooks")

# Both work: the recording job holds a connection, request handlers and loops a session.
Db = AsyncSession | AsyncConnection


async def webhook_target(db: Db, room_id: str) -> tuple[str, payloads.Data] | None:
    """The room's webhook URL and its description in payloads; None without a URL."""
    row = (await db.execute(select(Room.webhook_url, Room.name).where(Room.id == room_id))).first()
    if row is None or row.webhook_url is None:
        return None
    return str(row.webhook_url), payloads.room_data(room_id, row.name)


async def insert_delivery(
    db: Db,
    room_id: str,
    url: str,
    event: str,
    data: payloads.Data,
    now: datetime,
    *,
    due: bool = True,
) -> str:
    """Write a pending delivery. `due=False`: the caller sends it at once as attempt 1 (the
    test event); it is never due, so the dispatcher leaves it alone."""
    delivery_id = new_id("whd")
    await db.execute(
        insert(WebhookDelivery).values(
            id=delivery_id,
            room_id=room_id,
            event=event,
            url=url,
            payload=payloads.body(delivery_id, event, now, data),
            status=DeliveryStatus.pending.value,
            attempts=0 if due else 1,
            next_attempt_at=now if due else None,
            created_at=now,
            updated_at=now,
        )
    )
    _log.info("webhook enqueued", delivery_id=delivery_id, room_id=room_id, webhook_event=event)
    return delivery_id


async def enqueue_transcript_completed(db: Db, transcript_id: str, now: datetime) -> str | None:
    """Enqueue `transcript.completed` for an ended transcript of a room; the delivery id, or
    None when there is nothing to send (no room, no webhook URL, no result)."""
    row = (
        await db.execute(
            select(
                Transcript.room_id,
                Transcript.meeting_id,
                Transcript.recording_id,
                Transcript.document,
            ).where(Transcript.id == transcript_id)
        )
    ).first()
    if row is None or row.room_id is None or row.document is None:
        return None
    target = await webhook_target(db, row.room_id)
    if target is None:
        return None
    url, room = target
    meeting = None
    if row.meeting_id is not None:
        found = (
            await db.execute(
                select(Meeting.id, Meeting.start_date, Meeting.end_date, Meeting.ended_at).where(
                    Meeting.id == row.meeting_id
                )
            )
        ).first()
        if found is not None:
            meeting = payloads.meeting_data(*found)
    data = payloads.transcript_completed(
        transcript_id=transcript_id,
        doc=TranscriptDocument.model_validate_json(row.document),
        room=room,
        meeting=meeting,
        recording_id=row.recording_id,
    )
    return await insert_delivery(db, row.room_id, url, payloads.TRANSCRIPT_COMPLETED, data, now)


async def _people(db: Db, meeting_id: str) -> int | None:
    """Distinct people (not bots) the platform reported in the meeting; None without any
    participant report."""
    reported = await db.scalar(
        select(func.count()).select_from(Participant).where(Participant.meeting_id == meeting_id)
    )
    if not reported:
        return None
    people = await db.scalar(
        select(func.count(func.distinct(Participant.participant_id))).where(
            Participant.meeting_id == meeting_id,
            or_(Participant.role_name.is_(None), Participant.role_name.not_in(BOT_ROLES)),
        )
    )
    return int(people or 0)


async def enqueue_meeting_ended(db: Db, meeting: Meeting, now: datetime) -> str | None:
    """Enqueue `meeting.ended` for a meeting just marked ended (meetings.service.mark_ended);
    the delivery id, or None when its room has no webhook URL."""
    target = await webhook_target(db, meeting.room_id)
    if target is None:
        return None
    url, room = target
    data = payloads.meeting_ended(meeting, room, await _people(db, meeting.id))
    return await insert_delivery(db, meeting.room_id, url, payloads.MEETING_ENDED, data, now)
