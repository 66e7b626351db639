"""Meeting expiry: a meeting ends when it is past its end date with nobody in it, or when its
platform reports every session ended and nobody is left. The room then gets a fresh meeting on
the next request."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reflector.logs import get_logger
from reflector.meetings.models import Meeting
from reflector.meetings.service import mark_ended
from reflector.platforms.base import VideoPlatform
from reflector.room_webhooks.outbox import enqueue_meeting_ended

_log = get_logger("reflector.meetings.lifecycle")


async def close_finished_meetings(
    session: AsyncSession, platforms: dict[str, VideoPlatform], now: datetime
) -> list[tuple[str, str]]:
    """End what is over; returns (meeting id, reason) pairs. The caller commits."""
    closed: list[tuple[str, str]] = []
    meetings = await session.scalars(
        select(Meeting).where(Meeting.is_active.is_(True), Meeting.num_clients == 0)
    )
    for meeting in list(meetings):
        if meeting.end_date <= now:
            mark_ended(meeting, "expired", now)
            await enqueue_meeting_ended(session, meeting, now)
            closed.append((meeting.id, "expired"))
            continue
        platform = platforms.get(meeting.platform)
        if platform is None:
            continue
        try:
            sessions = await platform.list_sessions(meeting.platform_room_name)
        except Exception as exc:
            _log.warning("could not list sessions", meeting_id=meeting.id, error=str(exc))
            continue
        if sessions and all(s.ended_at is not None for s in sessions):
            mark_ended(meeting, "sessions_ended", now)
            await enqueue_meeting_ended(session, meeting, now)
            closed.append((meeting.id, "sessions_ended"))
    for meeting_id, reason in closed:
        _log.info("meeting ended", meeting_id=meeting_id, reason=reason)
    return closed
