"""The recording job: turn one stored recording into a transcript.

Idempotent and keyed by recording id: a job for a recording that is already done, or that
another job finished meanwhile, does nothing. A job whose worker died is redelivered and finds
the recording still `processing`; its transcript's finished steps are stored under the
transcript's prefix in derived storage, so it resumes at the step that was interrupted.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reflector.db.base import new_id, utcnow
from reflector.logs import get_logger
from reflector.meetings.presence import meeting_presence, people_count
from reflector.pipeline.runner import Backends, PipelineResult, Request
from reflector.recordings.models import Recording, RecordingStatus
from reflector.recordings.storage import Storage
from reflector.room_webhooks.outbox import enqueue_transcript_completed
from reflector.rooms.models import Room
from reflector.transcripts.models import Transcript, TranscriptStatus
from reflector.transcripts.processing import run_transcript, transcript_prefix

_log = get_logger("reflector.recordings.processing")

_RUNNABLE = [RecordingStatus.pending.value, RecordingStatus.processing.value]


async def process_recording(
    recording_id: str,
    *,
    engine: AsyncEngine,
    recordings: Storage,
    derived: Storage,
    backends: Backends,
    language: str | None = None,
    workdir: Path | None = None,
) -> str:
    """Run the job; returns the recording's status afterwards ("skipped" when there was
    nothing to do)."""
    async with engine.begin() as conn:
        # "processing" is runnable too: a job redelivered after its worker died finds it so.
        claimed = (
            await conn.execute(
                update(Recording)
                .where(Recording.id == recording_id, Recording.status.in_(_RUNNABLE))
                .values(status=RecordingStatus.processing.value, attempts=Recording.attempts + 1)
                .returning(
                    Recording.key, Recording.meeting_id, Recording.room_id, Recording.started_at
                )
            )
        ).first()
        if claimed is None:
            _log.info("nothing to do for this recording", recording_id=recording_id)
            return "skipped"
        owner_id = (
            await conn.scalar(select(Room.owner_id).where(Room.id == claimed.room_id))
            if claimed.room_id
            else None
        )
        presence = (
            await meeting_presence(conn, claimed.meeting_id, claimed.started_at)
            if claimed.meeting_id and claimed.started_at
            else []
        )
    if owner_id is None:
        return await _fail_recording(
            engine, recording_id, "Its room was deleted, so nobody could own its transcript."
        )
    transcript_id = await _open_transcript(
        engine, recording_id, owner_id, claimed.meeting_id, claimed.room_id, derived
    )

    async def fetch_source(into: Path) -> Path:
        source = into / ("source" + Path(claimed.key).suffix)
        await recordings.download(claimed.key, source)
        return source

    async def completed(conn: AsyncConnection, result: PipelineResult) -> None:
        await conn.execute(
            update(Recording)
            .where(Recording.id == recording_id)
            .values(
                status=RecordingStatus.completed.value,
                error=None,
                duration=result.document.duration,
                processed_at=utcnow(),
            )
        )
        # In this transaction: the event is sent if and only if the transcript is stored.
        await enqueue_transcript_completed(conn, transcript_id, utcnow())

    async def failed(conn: AsyncConnection, error: str) -> None:
        await _mark_failed(conn, recording_id, error)

    outcome = await run_transcript(
        transcript_id,
        engine=engine,
        derived=derived,
        backends=backends,
        fetch_source=fetch_source,
        request=Request(
            language=language,
            num_speakers=people_count(presence),
            presence=tuple(presence) if claimed.meeting_id else None,
        ),
        workdir=workdir,
        missing_source=f"The object {claimed.key} is no longer in {recordings.label}.",
        retry_hint=f"run `reflector recordings retry {recording_id}` once it is fixed.",
        on_ended=completed,
        on_failed=failed,
    )
    if outcome.status == "ended":
        _log.info("recording processed", recording_id=recording_id, transcript_id=transcript_id)
        return RecordingStatus.completed.value
    if outcome.status == "deleted":
        return await _fail_recording(
            engine, recording_id, "Its transcript was deleted while it was being processed."
        )
    _log.warning("recording failed", recording_id=recording_id, error=outcome.error)
    return RecordingStatus.failed.value


async def _open_transcript(
    engine: AsyncEngine,
    recording_id: str,
    owner_id: str,
    meeting_id: str | None,
    room_id: str | None,
    derived: Storage,
) -> str:
    """The recording's transcript, created on its first job and put back to `processing` on
    later ones (a retry)."""
    async with engine.begin() as conn:
        existing = await conn.scalar(
            select(Transcript.id).where(Transcript.recording_id == recording_id)
        )
        if existing is not None:
            await conn.execute(
                update(Transcript)
                .where(Transcript.id == existing)
                .values(status=TranscriptStatus.processing.value, error=None, ended_at=None)
            )
            return str(existing)
    transcript_id = new_id("trn")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(Transcript).values(
                    id=transcript_id,
                    owner_id=owner_id,
                    recording_id=recording_id,
                    meeting_id=meeting_id,
                    room_id=room_id,
                    source="recording",
                    status=TranscriptStatus.processing.value,
                    steps={},
                    storage_prefix=transcript_prefix(derived, transcript_id),
                )
            )
    except IntegrityError:
        # A second delivery of the same job got there first.
        return await _open_transcript(engine, recording_id, owner_id, meeting_id, room_id, derived)
    return transcript_id


async def _fail_recording(engine: AsyncEngine, recording_id: str, error: str) -> str:
    async with engine.begin() as conn:
        await _mark_failed(conn, recording_id, error)
    _log.warning("recording failed", recording_id=recording_id, error=error)
    return RecordingStatus.failed.value


async def _mark_failed(conn: AsyncConnection, recording_id: str, error: str) -> None:
    await conn.execute(
        update(Recording)
        .where(Recording.id == recording_id)
        .values(status=RecordingStatus.failed.value, error=error, processed_at=utcnow())
    )
