"""What callers are told about data retention deleted: the sentences of the 410s for deleted
audio and a deleted recording file, and of the refused retry of a recording whose file is
gone, quoting the audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from reflector.errors import Conflict, Gone
from reflector.retention.models import RetentionDeletion
from reflector.retention.policy import ROOM_FIELD, SETTING, Kind, stamp


async def deletion_reason(
    db: AsyncConnection | AsyncSession, kind: Kind, subject_id: str
) -> str | None:
    """The reason the audit log gives for the latest deletion of this kind of `subject_id`."""
    reason: str | None = await db.scalar(
        select(RetentionDeletion.reason)
        .where(RetentionDeletion.kind == kind.value, RetentionDeletion.subject_id == subject_id)
        .order_by(RetentionDeletion.deleted_at.desc(), RetentionDeletion.id.desc())
        .limit(1)
    )
    return reason


def _why(kind: Kind, reason: str | None) -> str:
    return reason or f"{SETTING[kind]} or the room's {ROOM_FIELD[kind]}"


async def audio_gone(db: AsyncSession, transcript_id: str, deleted_at: datetime) -> Gone:
    """The 410 for the audio (or waveform) of a transcript whose audio retention deleted."""
    reason = await deletion_reason(db, Kind.audio, transcript_id)
    return Gone(
        f"The audio of transcript '{transcript_id}' was deleted on {stamp(deleted_at)} by the "
        f"retention policy ({_why(Kind.audio, reason)}); its text, summaries and exports are "
        "kept. To keep the audio of future meetings longer, raise RETENTION_AUDIO_DAYS or the "
        "room's retention_audio_days (deleted audio does not come back)."
    )


async def raw_file_deleted(
    db: AsyncConnection | AsyncSession, recording_id: str, deleted_at: datetime
) -> Conflict:
    """The refusal to process again a recording whose raw file is gone."""
    reason = await deletion_reason(db, Kind.recording, recording_id)
    return Conflict(
        f"Recording {recording_id} cannot be processed again: its file was deleted by "
        f"retention on {stamp(deleted_at)} ({_why(Kind.recording, reason)}), so there is "
        "nothing left to process."
    )


async def recording_file_gone(
    db: AsyncConnection | AsyncSession, recording_id: str, deleted_at: datetime
) -> Gone:
    """The 410 for downloading a recording whose raw file is gone."""
    reason = await deletion_reason(db, Kind.recording, recording_id)
    return Gone(
        f"The file of recording {recording_id} was deleted by retention on {stamp(deleted_at)} "
        f"({_why(Kind.recording, reason)}) and cannot be downloaded any more; deleted files do "
        "not come back."
    )
