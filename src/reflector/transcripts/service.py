"""Reading transcripts, scoped to what the caller may see. Callers own the session.

Someone else's transcript is "not found", never "forbidden": its existence is not told."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reflector.auth.models import User
from reflector.errors import NotFound
from reflector.transcripts.models import Transcript


async def get_transcript(session: AsyncSession, user: User, transcript_id: str) -> Transcript:
    transcript = await session.scalar(
        select(Transcript).where(Transcript.id == transcript_id, Transcript.owner_id == user.id)
    )
    if transcript is None:
        raise NotFound(
            f"No transcript '{transcript_id}' among yours; check the id in the recording's "
            "or meeting's transcript_id."
        )
    return transcript
