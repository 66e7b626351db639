"""One recording and one job per object, however many times and ways it is announced."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db.engine import create_session_factory
from reflector.errors import Conflict
from reflector.meetings.models import Meeting
from reflector.recordings.intake import PROCESS_RECORDING, Intake
from reflector.recordings.models import Recording
from reflector.recordings.objects import Source, StoredObject
from tests.conftest import Account
from tests.factories import make_meeting
from tests.fakes.jobs import RecordingJobQueue

BUCKET = "reflector-recordings"


def key_for(meeting: Meeting, folder: str = "") -> str:
    prefix = f"{folder}/" if folder else ""
    return f"{prefix}{meeting.platform_room_name.lstrip('/')}-2026-11-28T12:00:05Z.mp4"


@pytest.fixture
def jobs() -> RecordingJobQueue:
    return RecordingJobQueue()


@pytest.fixture
def intake(engine: AsyncEngine, jobs: RecordingJobQueue) -> Intake:
    return Intake(engine, jobs)


async def recordings(engine: AsyncEngine) -> list[Recording]:
    async with create_session_factory(engine)() as session:
        return list(await session.scalars(select(Recording)))


async def test_a_recording_is_matched_and_enqueued_once(
    engine: AsyncEngine, intake: Intake, jobs: RecordingJobQueue, alice: Account
) -> None:
    meeting = await make_meeting(engine, alice)
    obj = StoredObject(BUCKET, key_for(meeting, "team"), size=1234)
    first = await intake.receive(obj, Source.sqs)
    assert first is not None
    assert first.created
    assert first.enqueued
    assert first.status == "pending"
    # The same notification twice more, the webhook, and a reconciler pass.
    for source in (Source.sqs, Source.sqs, Source.webhook, Source.reconciler):
        again = await intake.receive(StoredObject(BUCKET, obj.key), source)
        assert again is not None
        assert again.recording_id == first.recording_id
        assert not again.created
        assert not again.enqueued
    [row] = await recordings(engine)
    assert row.meeting_id == meeting.id
    assert row.room_id == meeting.room_id
    assert row.announcements == 5
    assert row.size == 1234
    assert row.source == "sqs"
    assert row.started_at == datetime(2026, 11, 28, 12, 0, 5, tzinfo=UTC)
    assert jobs.enqueued == [(PROCESS_RECORDING, (first.recording_id,), None)]


async def test_concurrent_announcements_enqueue_one_job(
    engine: AsyncEngine, intake: Intake, jobs: RecordingJobQueue, alice: Account
) -> None:
    meeting = await make_meeting(engine, alice)
    obj = StoredObject(BUCKET, key_for(meeting))
    sources = [Source.sqs, Source.webhook, Source.reconciler, Source.sqs]
    results = await asyncio.gather(
        *[intake.receive(obj, source) for source in sources], return_exceptions=True
    )
    # SQLite may refuse a concurrent writer; what matters is what ends up stored.
    assert any(r is not None and not isinstance(r, BaseException) for r in results)
    assert len(await recordings(engine)) == 1
    assert len(jobs.enqueued) == 1


async def test_unknown_room_is_stored_unmatched_without_a_job(
    engine: AsyncEngine, intake: Intake, jobs: RecordingJobQueue
) -> None:
    received = await intake.receive(
        StoredObject(BUCKET, "nobody-1234-2026-11-28T12:00:05Z.mp4"), Source.sqs
    )
    assert received is not None
    assert received.status == "unmatched"
    assert jobs.enqueued == []
    [row] = await recordings(engine)
    assert row.meeting_id is None


async def test_other_files_are_not_recordings(intake: Intake, engine: AsyncEngine) -> None:
    assert await intake.receive(StoredObject(BUCKET, "notes/readme.txt"), Source.sqs) is None
    assert await recordings(engine) == []


async def test_a_broker_failure_gives_the_claim_back(
    engine: AsyncEngine, intake: Intake, jobs: RecordingJobQueue, alice: Account
) -> None:
    meeting = await make_meeting(engine, alice)
    obj = StoredObject(BUCKET, key_for(meeting))
    jobs.fail_next = 1
    with pytest.raises(ConnectionError):
        await intake.receive(obj, Source.sqs)
    # The redelivered message stores nothing new but does enqueue the job.
    again = await intake.receive(obj, Source.sqs)
    assert again is not None
    assert again.enqueued
    assert len(jobs.enqueued) == 1
    assert len(await recordings(engine)) == 1


async def test_stuck_jobs_are_requeued_and_retry(
    engine: AsyncEngine, intake: Intake, jobs: RecordingJobQueue, alice: Account
) -> None:
    meeting = await make_meeting(engine, alice)
    received = await intake.receive(StoredObject(BUCKET, key_for(meeting)), Source.sqs)
    assert received is not None
    assert await intake.requeue_stale(timedelta(minutes=15)) == 0
    later = datetime.now(UTC) + timedelta(hours=1)
    assert await intake.requeue_stale(timedelta(minutes=15), now=later) == 1
    assert len(jobs.enqueued) == 2

    # Retry: only failed or unmatched recordings.
    assert await intake.retry(received.recording_id) is False
    async with create_session_factory(engine)() as session:
        await session.execute(
            update(Recording)
            .where(Recording.id == received.recording_id)
            .values(status="failed", error="boom")
        )
        await session.commit()
    assert await intake.retry(received.recording_id) is True
    [row] = await recordings(engine)
    assert row.status == "pending"
    assert row.error is None
    assert len(jobs.enqueued) == 3


async def test_retrying_an_unmatched_recording_matches_it_again(
    engine: AsyncEngine, intake: Intake, jobs: RecordingJobQueue, alice: Account
) -> None:
    """A recording announced before its meeting was stored (or whose meeting was stored under
    another name) is matched on retry; one that still names no meeting stays unmatched and the
    retry says why."""
    key = "standup-0b1fbe30-2346-4681-85a5-f309f11e509f-2026-11-28T12:00:05Z.mp4"
    early = await intake.receive(StoredObject(BUCKET, key), Source.sqs)
    stray = await intake.receive(
        StoredObject(BUCKET, "elsewhere-1-2026-11-28T12:00:05Z.mp4"), Source.sqs
    )
    assert early is not None
    assert stray is not None
    assert (early.status, stray.status) == ("unmatched", "unmatched")

    with pytest.raises(Conflict, match="still names no meeting this service knows"):
        await intake.retry(early.recording_id)
    meeting = await make_meeting(engine, alice)  # its room name is the one in `key`
    assert await intake.retry(early.recording_id)
    [matched] = [r for r in await recordings(engine) if r.id == early.recording_id]
    assert (matched.status, matched.meeting_id, matched.room_id) == (
        "pending",
        meeting.id,
        meeting.room_id,
    )
    assert jobs.enqueued == [(PROCESS_RECORDING, (early.recording_id,), None)]

    with pytest.raises(Conflict, match="It stays unmatched"):
        await intake.retry(stray.recording_id)
    [still] = [r for r in await recordings(engine) if r.id == stray.recording_id]
    assert (still.status, still.meeting_id) == ("unmatched", None)
