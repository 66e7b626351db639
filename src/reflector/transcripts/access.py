"""Who may see and change a transcript.

- The owner sees and changes everything.
- `share_mode` `room`: every signed-in user may read it (get, export, audio, waveform).
- `share_mode` `public`: anyone may read it, without a token too.
- Changing (PATCH, DELETE) is for the owner only.

Everyone else is told "not found", with the same sentence as for an id that does not exist, on
every route: a transcript's existence is never revealed (never 403).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reflector.auth.models import User
from reflector.errors import NotFound
from reflector.transcripts.models import ShareMode, Transcript


def not_found(transcript_id: str) -> NotFound:
    return NotFound(
        f"No transcript '{transcript_id}' among yours or those shared with you; check the id "
        "(GET /v1/transcripts lists yours)."
    )


def can_read(transcript: Transcript, user: User | None) -> bool:
    if user is not None and transcript.owner_id == user.id:
        return True
    if transcript.share_mode == ShareMode.public.value:
        return True
    return transcript.share_mode == ShareMode.room.value and user is not None


def can_change(transcript: Transcript, user: User | None) -> bool:
    return user is not None and transcript.owner_id == user.id


async def readable_transcript(
    session: AsyncSession, user: User | None, transcript_id: str
) -> Transcript:
    """The transcript when `user` (None: an anonymous caller) may read it; else NotFound."""
    transcript = await session.get(Transcript, transcript_id)
    if transcript is None or not can_read(transcript, user):
        raise not_found(transcript_id)
    return transcript


async def owned_transcript(session: AsyncSession, user: User, transcript_id: str) -> Transcript:
    """The transcript when `user` owns it; else NotFound (shared ones too: not for changing)."""
    transcript = await session.scalar(
        select(Transcript).where(Transcript.id == transcript_id, Transcript.owner_id == user.id)
    )
    if transcript is None:
        raise not_found(transcript_id)
    return transcript
