"""Reading recordings, scoped to what the caller may see. Callers own the session."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from reflector.auth.models import User
from reflector.errors import NotFound
from reflector.pagination import decode_cursor, encode_cursor
from reflector.recordings.models import Recording
from reflector.rooms.models import Room


def _visible(user: User) -> ColumnElement[bool]:
    """Owners see their rooms' recordings; admins see all, the unmatched ones included."""
    if user.is_admin:
        return true()
    return Recording.room_id.in_(select(Room.id).where(Room.owner_id == user.id))


async def get_recording(session: AsyncSession, user: User, recording_id: str) -> Recording:
    recording = await session.scalar(
        select(Recording).where(Recording.id == recording_id, _visible(user))
    )
    if recording is None:
        raise NotFound(f"No recording '{recording_id}' among yours; GET /v1/recordings lists them.")
    return recording


async def list_recordings(
    session: AsyncSession, user: User, *, status: str | None, limit: int, cursor: str | None
) -> tuple[list[Recording], str | None]:
    """Newest first."""
    query = select(Recording).where(_visible(user))
    if status:
        query = query.where(Recording.status == status)
    if cursor:
        before_time, before_id = decode_cursor(cursor)
        query = query.where(
            or_(
                Recording.created_at < before_time,
                and_(Recording.created_at == before_time, Recording.id < before_id),
            )
        )
    rows = list(
        await session.scalars(
            query.order_by(Recording.created_at.desc(), Recording.id.desc()).limit(limit + 1)
        )
    )
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last.created_at, last.id)
