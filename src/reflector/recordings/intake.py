"""The one way recordings come in, however they were announced (SQS, webhook, reconciler):
one row per object, one job per row."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reflector.db.base import new_id, utcnow
from reflector.db.upsert import insert_for
from reflector.errors import Conflict
from reflector.jobs.queue import JobQueue
from reflector.logs import get_logger
from reflector.meetings.models import Meeting
from reflector.platforms.whereby.recordings import parse_key
from reflector.recordings.models import Recording, RecordingStatus
from reflector.recordings.objects import Source, StoredObject
from reflector.retention.notices import raw_file_deleted

# The task's name (jobs.tasks registers it; the name routes it to the "audio" queue).
PROCESS_RECORDING = "reflector.audio.process_recording"

_log = get_logger("reflector.recordings.intake")


@dataclass(frozen=True)
class Received:
    recording_id: str
    created: bool
    status: str
    enqueued: bool


class Intake:
    def __init__(self, engine: AsyncEngine, jobs: JobQueue) -> None:
        self.engine = engine
        self.jobs = jobs

    async def receive(self, obj: StoredObject, source: Source) -> Received | None:
        """Store the object's recording row (once) and make sure its job is enqueued (once).
        None when the key is not a recording's (another file in the bucket)."""
        name = parse_key(obj.key)
        if name is None:
            return None
        async with self.engine.begin() as conn:
            meeting = await _meeting_of(conn, obj.key)
            status = RecordingStatus.pending if meeting else RecordingStatus.unmatched
            inserted = (
                await conn.execute(
                    insert_for(conn.dialect.name, Recording.__table__)
                    .values(
                        id=new_id("rec"),
                        bucket=obj.bucket,
                        key=obj.key,
                        meeting_id=meeting.id if meeting else None,
                        room_id=meeting.room_id if meeting else None,
                        status=status.value,
                        size=obj.size,
                        started_at=name.started_at,
                        source=source.value,
                        announcements=1,
                        attempts=0,
                        created_at=utcnow(),
                        updated_at=utcnow(),
                    )
                    .on_conflict_do_nothing(index_elements=["bucket", "key"])
                    .returning(Recording.id, Recording.status)
                )
            ).first()
            row = (
                inserted
                or (
                    await conn.execute(
                        update(Recording)
                        .where(Recording.bucket == obj.bucket, Recording.key == obj.key)
                        .values(
                            announcements=Recording.announcements + 1,
                            size=func.coalesce(Recording.size, obj.size),
                        )
                        .returning(Recording.id, Recording.status)
                    )
                ).one()
            )
        if inserted is not None:
            _log.info(
                "recording stored",
                recording_id=row.id,
                key=obj.key,
                status=row.status,
                source=source.value,
            )
        enqueued = await self.ensure_job(row.id) if row.status == "pending" else False
        return Received(row.id, inserted is not None, row.status, enqueued)

    async def ensure_job(self, recording_id: str) -> bool:
        """Enqueue the recording's job unless someone already did: the claim and its check are
        one statement, so concurrent announcements enqueue one job."""
        async with self.engine.begin() as conn:
            claimed = (
                await conn.execute(
                    update(Recording)
                    .where(
                        Recording.id == recording_id,
                        Recording.status == RecordingStatus.pending.value,
                        Recording.job_enqueued_at.is_(None),
                    )
                    .values(job_enqueued_at=utcnow())
                    .returning(Recording.id)
                )
            ).first()
        if claimed is None:
            return False
        try:
            # Celery's send_task blocks on the broker: keep it off the event loop.
            await asyncio.to_thread(self.jobs.enqueue, PROCESS_RECORDING, recording_id)
        except Exception:
            # Give the claim back so the next announcement (SQS redelivery) tries again.
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(Recording)
                    .where(Recording.id == recording_id)
                    .values(job_enqueued_at=None)
                )
            raise
        _log.info("recording job enqueued", recording_id=recording_id)
        return True

    async def requeue_stale(self, older_than: timedelta, now: datetime | None = None) -> int:
        """Enqueue again the pending recordings whose job never started (a crash between the
        claim and the broker). Jobs are idempotent, so a slow queue costs only a no-op."""
        cutoff = (now or utcnow()) - older_than
        async with self.engine.begin() as conn:
            stale = list(
                (
                    await conn.execute(
                        update(Recording)
                        .where(
                            and_(
                                Recording.status == RecordingStatus.pending.value,
                                Recording.job_enqueued_at < bindparam("cutoff"),
                            )
                        )
                        .values(job_enqueued_at=None)
                        .returning(Recording.id),
                        {"cutoff": cutoff},
                    )
                ).scalars()
            )
        for recording_id in stale:
            await self.ensure_job(recording_id)
        return len(stale)

    async def retry(self, recording_id: str) -> bool:
        """Put a failed or unmatched recording back to pending and enqueue it; False when
        there is no such recording in either status. An unmatched one is matched again first
        (its meeting may have been stored since): Conflict, with a sentence, when it still
        names no meeting, or when retention deleted its file."""
        retryable = [RecordingStatus.failed.value, RecordingStatus.unmatched.value]
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(Recording.key, Recording.meeting_id, Recording.object_deleted_at).where(
                        Recording.id == recording_id, Recording.status.in_(retryable)
                    )
                )
            ).first()
            if row is None:
                return False
            if row.object_deleted_at is not None:
                raise await raw_file_deleted(conn, recording_id, row.object_deleted_at)
            meeting = None if row.meeting_id else await _meeting_of(conn, row.key)
            if row.meeting_id is None and meeting is None:
                raise Conflict(
                    f"Recording {recording_id} still names no meeting this service knows "
                    f"(its key is {row.key!r}): it was recorded in a Whereby room Reflector did "
                    "not create, or its meeting was deleted. It stays unmatched."
                )
            matched = {"meeting_id": meeting.id, "room_id": meeting.room_id} if meeting else {}
            reset = (
                await conn.execute(
                    update(Recording)
                    .where(Recording.id == recording_id, Recording.status.in_(retryable))
                    .values(
                        status=RecordingStatus.pending.value,
                        error=None,
                        job_enqueued_at=None,
                        **matched,
                    )
                    .returning(Recording.id)
                )
            ).first()
        if reset is None:
            return False
        if meeting is not None:
            _log.info(
                "unmatched recording matched", recording_id=recording_id, meeting_id=meeting.id
            )
        return await self.ensure_job(recording_id)


async def _meeting_of(conn: AsyncConnection, key: str) -> Row[str, str] | None:
    """The meeting (id, room_id) whose room a recording's key names, if we know it."""
    name = parse_key(key)
    if name is None:
        return None
    return (
        await conn.execute(
            select(Meeting.id, Meeting.room_id).where(Meeting.platform_room_name == name.room_name)
        )
    ).first()
