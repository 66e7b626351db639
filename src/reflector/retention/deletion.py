"""Deleting a transcript through the API deletes what the policy says: the transcript with
its derived files and, when its room has a recording retention policy (any number of days,
from the room or from RETENTION_RECORDING_DAYS), its raw recording right away. With no such
policy the raw recording is kept, as it would be by the retention passes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reflector.auth.models import User
from reflector.errors import ServiceUnavailable
from reflector.logs import get_logger
from reflector.recordings.models import Recording
from reflector.recordings.storage import Storage
from reflector.retention.apply import (
    Deletion,
    in_storage,
    load_rooms,
    logged,
    mark_raw_deleted,
    raw_target,
    record,
)
from reflector.retention.policy import Kind, rule_for
from reflector.settings import Settings
from reflector.transcripts.access import owned_transcript
from reflector.transcripts.service import remove_transcript

_log = get_logger("reflector.retention")


async def delete_transcript(
    session: AsyncSession,
    user: User,
    transcript_id: str,
    *,
    derived: Storage,
    recordings: Callable[[], Storage],
    settings: Settings,
    now: datetime,
) -> Deletion | None:
    """Delete one of the caller's transcripts (NotFound otherwise) and, per the policy, its
    raw recording; returns that recording's deletion, if any. `recordings` gives the
    recording storage (made only when needed). The caller commits.

    The raw file goes first: when that fails (ServiceUnavailable, with a sentence), nothing
    has changed."""
    transcript = await owned_transcript(session, user, transcript_id)
    deletion = None
    if transcript.recording_id is not None:
        deletion = await _delete_raw(
            session,
            transcript.id,
            transcript.recording_id,
            now=now,
            recordings=recordings,
            settings=settings,
        )
    await remove_transcript(session, transcript, derived)
    if deletion is not None:
        await record(await session.connection(), deletion, now)
        logged(deletion)
    return deletion


async def _delete_raw(
    session: AsyncSession,
    transcript_id: str,
    recording_id: str,
    *,
    recordings: Callable[[], Storage],
    settings: Settings,
    now: datetime,
) -> Deletion | None:
    recording = (
        await session.execute(
            select(Recording.bucket, Recording.key, Recording.room_id).where(
                Recording.id == recording_id, Recording.object_deleted_at.is_(None)
            )
        )
    ).first()
    if recording is None:
        return None  # gone already
    room = None
    if recording.room_id is not None:
        rooms = await load_rooms(await session.connection(), [recording.room_id])
        room = rooms.get(recording.room_id)
    rule = rule_for(Kind.recording, settings, room)
    if rule is None:
        return None  # no recording retention: the raw recording is kept
    storage = recordings()
    target = raw_target(storage, recording.bucket, recording.key)
    if not in_storage(storage, recording.bucket):
        _log.warning(
            "raw recording kept: it is in another bucket",
            subject_id=recording_id,
            target=target,
            storage=storage.label,
        )
        return None
    try:
        await storage.delete(recording.key)
    except Exception as exc:
        _log.warning(
            "raw recording could not be deleted",
            subject_id=recording_id,
            target=target,
            error=f"{type(exc).__name__}: {exc}",
        )
        raise ServiceUnavailable(
            f"Transcript '{transcript_id}' was not deleted: its raw recording {target} could "
            f"not be deleted ({type(exc).__name__}), which {rule.source} asks for. Try again; "
            "if it keeps failing, check that Reflector's credentials may delete objects in "
            "the recording bucket (s3:DeleteObject)."
        ) from exc
    if not await mark_raw_deleted(await session.connection(), recording_id, now):
        return None
    return Deletion(
        Kind.recording.value,
        recording_id,
        target,
        f"{rule.source}: its transcript {transcript_id} was deleted through the API",
    )
