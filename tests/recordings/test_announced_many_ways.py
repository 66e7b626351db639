"""One recording, one job: the same object announced by SQS three times, by Whereby's
recording.finished, and found again by a reconciler pass; each through the real component."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from reflector.db.engine import create_session_factory
from reflector.platforms.base import EventKind, PlatformEvent
from reflector.recordings.announcements import recording_finished
from reflector.recordings.intake import Intake
from reflector.recordings.models import Recording
from reflector.recordings.objects import Source, StoredObject
from reflector.recordings.processing import process_recording
from reflector.recordings.reconciler import Reconciler
from reflector.recordings.sqs import SqsConsumer
from reflector.recordings.storage import ListingDenied, LocalStorage, S3Storage
from tests.conftest import Account, make_settings
from tests.factories import make_meeting
from tests.fakes.jobs import RecordingJobQueue
from tests.fakes.pipeline import scripted_backends
from tests.recordings.conftest import NotifiedBucket
from tests.recordings.test_sqs import s3_event

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "media"


async def count(engine: AsyncEngine) -> int:
    async with create_session_factory(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(Recording)) or 0)


async def test_sqs_thrice_webhook_and_reconciler(
    engine: AsyncEngine,
    alice: Account,
    aws_env: str,
    notified_bucket: Callable[..., NotifiedBucket],
    tmp_path: Path,
) -> None:
    bucket = notified_bucket(visibility_timeout=30, prefix="raw/")
    meeting = await make_meeting(engine, alice)
    filename = f"{meeting.platform_room_name.lstrip('/')}-2026-11-28T12:00:05Z.mp4"
    key = f"raw/{filename}"
    jobs = RecordingJobQueue()
    intake = Intake(engine, jobs)

    async def from_sqs(obj: StoredObject) -> None:
        await intake.receive(obj, Source.sqs)

    consumer = SqsConsumer(bucket.queue_url, intake=from_sqs, wait_seconds=1)
    bucket.put(key, (FIXTURES / "talk.mp4").read_bytes())
    for _ in range(2):  # the same notification, delivered twice more
        bucket.send(s3_event(bucket.bucket, key))
    deadline = time.monotonic() + 15
    while bucket.counts() != (0, 0):
        assert time.monotonic() < deadline, bucket.counts()
        await consumer.poll_once()

    settings = make_settings(tmp_path, RECORDING_STORAGE_AWS_BUCKET_NAME=f"{bucket.bucket}/raw")
    event = PlatformEvent(
        event_id="e" * 64,
        type="recording.finished",
        kind=EventKind.recording_finished,
        created_at=meeting.start_date,
        meeting_id=meeting.platform_meeting_id,
        room_name=meeting.platform_room_name,
        data={"filename": filename, "status": "completed"},
    )
    assert await recording_finished(intake, settings, event) is not None

    storage = S3Storage(f"{bucket.bucket}/raw", endpoint_url=aws_env)
    reconciler = Reconciler(engine, storage, bucket.bucket, intake)
    assert await reconciler.run_once() == 0

    assert await count(engine) == 1
    assert len(jobs.enqueued) == 1
    async with create_session_factory(engine)() as session:
        row = await session.scalar(select(Recording))
        assert row is not None
        assert row.key == key
        assert row.announcements == 4  # three SQS deliveries and the webhook
        assert row.meeting_id == meeting.id

    # A recording nobody announced: the reconciler finds it, once.
    other = key.replace("12:00:05", "13:00:00")
    bucket.s3.put_object(Bucket=bucket.bucket, Key=other, Body=b"x")
    assert await reconciler.run_once() == 1
    assert await reconciler.run_once() == 0
    assert await count(engine) == 2
    assert len(jobs.enqueued) == 2


class RefusesListing(LocalStorage):
    """The IAM policy of Whereby's guide: reading is allowed, listing is not."""

    def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        raise ListingDenied("AccessDenied: s3:ListBucket")


async def test_reconciler_stops_after_one_warning_when_listing_is_denied(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    reconciler = Reconciler(
        engine, RefusesListing(tmp_path), "bucket", Intake(engine, RecordingJobQueue())
    )
    with capture_logs() as logs:
        assert await reconciler.run_once() == 0
        assert await reconciler.run_once() == 0
    warnings = [entry for entry in logs if "ListBucket" in entry["event"]]
    assert len(warnings) == 1
    assert reconciler.listing_denied


async def test_a_job_left_processing_by_a_dead_worker_completes(
    engine: AsyncEngine, alice: Account, tmp_path: Path
) -> None:
    meeting = await make_meeting(engine, alice)
    key = f"{meeting.platform_room_name.lstrip('/')}-2026-11-28T12:00:05Z.mp4"
    recordings = LocalStorage(tmp_path / "bucket")
    await recordings.upload(key, FIXTURES / "talk.mp4", "video/mp4")
    received = await Intake(engine, RecordingJobQueue()).receive(
        StoredObject("bucket", key), Source.sqs
    )
    assert received is not None
    async with create_session_factory(engine)() as session:
        # What a worker killed mid-job leaves behind.
        await session.execute(
            update(Recording)
            .where(Recording.id == received.recording_id)
            .values(status="processing", attempts=1)
        )
        await session.commit()
    status = await process_recording(
        received.recording_id,
        engine=engine,
        recordings=recordings,
        derived=LocalStorage(tmp_path / "derived"),
        backends=scripted_backends()[0],
        workdir=tmp_path,
    )
    assert status == "completed"
    async with create_session_factory(engine)() as session:
        row = await session.get(Recording, received.recording_id)
        assert row is not None
        assert row.attempts == 2
        assert row.duration == pytest.approx(24.7, abs=0.3)


def test_recordings_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from reflector.cli import app

    monkeypatch.delenv("DATABASE_URL", raising=False)
    runner = CliRunner(env={"DATA_DIR": str(tmp_path / "data")})
    absent = str(tmp_path / "absent.env")
    assert runner.invoke(app, ["--env-file", absent, "migrate"]).exit_code == 0
    listed = runner.invoke(app, ["--env-file", absent, "recordings", "list"])
    assert listed.exit_code == 0
    assert listed.stdout == ""
    missing = runner.invoke(app, ["--env-file", absent, "recordings", "retry", "rec_nope"])
    assert missing.exit_code == 1
    assert "recordings list" in missing.stderr
    bad = runner.invoke(app, ["--env-file", absent, "worker", "--queues", "nope"])
    assert bad.exit_code == 2
    assert "nope" in bad.stderr
