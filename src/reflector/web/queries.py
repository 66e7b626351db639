"""The few reads the pages need beyond the feature services, scoped to the signed-in owner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reflector.auth.models import User
from reflector.rooms.models import Room
from reflector.transcripts.models import Transcript


@dataclass(frozen=True)
class TranscriptRow:
    id: str
    title: str
    status: str
    step: str | None
    error: str | None
    meeting_id: str | None
    room_name: str | None
    duration: float | None
    created_at: datetime


def _title(transcript: Transcript) -> str:
    if transcript.title:
        return transcript.title
    if transcript.filename:
        return transcript.filename
    if transcript.status == "processing":
        return "Transcript being made"
    return "Untitled transcript"


async def owner_transcripts(
    session: AsyncSession, owner: User, *, room_id: str | None = None, limit: int = 100
) -> list[TranscriptRow]:
    """The owner's transcripts, newest first; only one room's when `room_id` is given."""
    query = (
        select(Transcript, Room.name)
        .outerjoin(Room, Room.id == Transcript.room_id)
        .where(Transcript.owner_id == owner.id)
        .order_by(Transcript.created_at.desc(), Transcript.id.desc())
        .limit(limit)
    )
    if room_id is not None:
        query = query.where(Transcript.room_id == room_id)
    rows = (await session.execute(query)).all()
    return [
        TranscriptRow(
            id=transcript.id,
            title=_title(transcript),
            status=transcript.status,
            step=transcript.step,
            error=transcript.error,
            meeting_id=transcript.meeting_id,
            room_name=room_name,
            duration=transcript.duration,
            created_at=transcript.created_at,
        )
        for transcript, room_name in rows
    ]


async def room_name(session: AsyncSession, room_id: str | None) -> str | None:
    if room_id is None:
        return None
    name: str | None = await session.scalar(select(Room.name).where(Room.id == room_id))
    return name
