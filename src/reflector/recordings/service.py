"""Reading recordings, scoped to what the caller may see. Callers own the session."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from reflector.auth.models import User
from reflector.errors import NotFound
from reflector.pagination import keyset_page
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
    return await keyset_page(
        session, query, Recording, limit=limit, cursor=cursor, newest_first=True
    )
