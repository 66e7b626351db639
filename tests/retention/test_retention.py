"""The retention policy through time: an injected clock moves a recording through its life
(processed, raw file deleted, audio deleted, transcript deleted), and what must never go
(failed recordings, things not due yet) stays."""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.app import create_app
from reflector.db.base import utcnow
from reflector.db.engine import create_session_factory
from reflector.meetings.models import Meeting
from reflector.recordings.intake import Intake
from reflector.recordings.models import Recording, RecordingStatus
from reflector.recordings.objects import Source, StoredObject
from reflector.recordings.processing import process_recording
from reflector.recordings.storage import LocalStorage, Storage, recording_storage
from reflector.retention.apply import Deletion, apply_retention, object_url, summary
from reflector.retention.models import RetentionDeletion
from reflector.retention.policy import stamp
from reflector.settings import Settings
from reflector.transcripts.models import Transcript
from tests.conftest import Account, make_settings
from tests.factories import make_meeting
from tests.fakes.jobs import RecordingJobQueue
from tests.fakes.pipeline import scripted_backends
from tests.retention.conftest import FlakyStorage, add_recording, add_room, add_transcript
from tests.transcripts.test_recording_transcripts import MEDIA, recording_key

DAY = timedelta(days=1)


async def recorded(
    engine: AsyncEngine,
    meeting: Meeting,
    recordings: Storage,
    derived: Storage,
    tmp_path: Path,
    key: str,
    *,
    fail_with: str | None = None,
) -> Recording:
    """A recording stored in the bucket, announced, and processed by the real recording job
    with scripted models (failing at diarization when `fail_with` says so)."""
    shutil.copyfile(MEDIA / "talk.mp4", tmp_path / "talk.mp4")
    await recordings.upload(key, tmp_path / "talk.mp4", "video/mp4")
    received = await Intake(engine, RecordingJobQueue()).receive(
        StoredObject("whereby", key), Source.sqs
    )
    assert received is not None
    backends, _, diarizer = scripted_backends()
    diarizer.fail_with = fail_with
    status = await process_recording(
        received.recording_id,
        engine=engine,
        recordings=recordings,
        derived=derived,
        backends=backends,
        workdir=tmp_path,
    )
    assert status == ("failed" if fail_with else "completed")
    return await recording_row(engine, received.recording_id)


async def recording_row(engine: AsyncEngine, recording_id: str) -> Recording:
    async with create_session_factory(engine)() as session:
        row = await session.get(Recording, recording_id)
        assert row is not None
        return row


async def transcript_row(engine: AsyncEngine, recording_id: str) -> Transcript | None:
    async with create_session_factory(engine)() as session:
        row: Transcript | None = await session.scalar(
            select(Transcript).where(Transcript.recording_id == recording_id)
        )
        return row


async def audit(engine: AsyncEngine) -> list[tuple[str, str, str, str, datetime]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                RetentionDeletion.kind,
                RetentionDeletion.subject_id,
                RetentionDeletion.target,
                RetentionDeletion.reason,
                RetentionDeletion.deleted_at,
            ).order_by(RetentionDeletion.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def keys_under(storage: Storage, prefix: str) -> list[str]:
    return [key async for key in storage.list_keys(prefix.removeprefix(storage.prefix))]


async def test_a_recording_through_its_life(
    app: FastAPI,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    alice: Account,
    tmp_path: Path,
) -> None:
    meeting = await make_meeting(engine, alice)
    policy = {
        "retention_recording_days": 2,
        "retention_audio_days": 5,
        "retention_transcript_days": 10,
    }
    patched = await client.patch(f"/v1/rooms/{meeting.room_id}", json=policy, headers=alice.headers)
    assert patched.status_code == 200, patched.text
    recordings = recording_storage(settings)
    derived: Storage = app.state.derived_storage
    ok = await recorded(engine, meeting, recordings, derived, tmp_path, recording_key(meeting))
    failed_key = recording_key(meeting).replace("12:00:05Z", "13:00:05Z")
    failed = await recorded(
        engine, meeting, recordings, derived, tmp_path, failed_key, fail_with="No speech."
    )
    transcript = await transcript_row(engine, ok.id)
    assert transcript is not None
    assert transcript.ended_at is not None
    assert ok.processed_at is not None
    assert transcript.audio_key is not None
    assert transcript.playback_key is not None
    processed, ended = ok.processed_at, transcript.ended_at
    audio_keys = [transcript.audio_key, transcript.playback_key, transcript.steps["audio"]]

    async def retention(now: datetime, dry_run: bool = False) -> list[Deletion]:
        return await apply_retention(engine, recordings, derived, settings, now, dry_run=dry_run)

    # One day on, and a second before two days: nothing is due.
    assert await retention(processed + DAY) == []
    assert await retention(processed + 2 * DAY - timedelta(seconds=1)) == []

    # Two days after processing: exactly the raw file. A dry run first changes nothing.
    raw = Deletion(
        "recording",
        ok.id,
        object_url(recordings, ok.key),
        f"RETENTION_RECORDING_DAYS=2 (room standup): processed {stamp(processed)}",
    )
    assert await retention(processed + 2 * DAY, dry_run=True) == [raw]
    assert await recordings.size(ok.key) is not None
    assert (await recording_row(engine, ok.id)).object_deleted_at is None
    assert await audit(engine) == []

    assert await retention(processed + 2 * DAY) == [raw]
    assert await recordings.size(ok.key) is None
    row = await recording_row(engine, ok.id)
    assert (row.status, row.object_deleted_at) == ("completed", processed + 2 * DAY)
    assert await recordings.size(failed.key) is not None
    # The same moment again: nothing more.
    assert await retention(processed + 2 * DAY) == []
    got = await client.get(f"/v1/transcripts/{transcript.id}/audio", headers=alice.headers)
    assert got.status_code == 200
    shown = await client.get(f"/v1/recordings/{ok.id}", headers=alice.headers)
    assert shown.json()["object_deleted_at"] is not None

    # Five days after the transcript ended: its audio (and the peaks stored with it).
    assert await retention(ended + 5 * DAY - timedelta(seconds=1)) == []
    deleted = await retention(ended + 5 * DAY)
    assert [(d.kind, d.subject_id, d.reason) for d in deleted] == [
        ("audio", transcript.id, f"RETENTION_AUDIO_DAYS=5 (room standup): ended {stamp(ended)}")
    ]
    assert deleted[0].target == " ".join(object_url(derived, key) for key in audio_keys)
    for key in audio_keys:
        assert await derived.size(key) is None
    after = await transcript_row(engine, ok.id)
    assert after is not None
    assert (after.audio_key, after.playback_key, after.audio_deleted_at) == (
        None,
        None,
        ended + 5 * DAY,
    )
    assert "audio" not in after.steps
    for what in ("audio", "waveform"):
        gone = await client.get(f"/v1/transcripts/{transcript.id}/{what}", headers=alice.headers)
        assert gone.status_code == 410, gone.text
        detail = gone.json()["detail"]
        assert f"was deleted on {stamp(ended + 5 * DAY)}" in detail
        assert "RETENTION_AUDIO_DAYS=5 (room standup)" in detail
    still = await client.get(f"/v1/transcripts/{transcript.id}", headers=alice.headers)
    assert still.status_code == 200
    assert still.json()["words"]
    assert still.json()["audio_deleted_at"] is not None
    assert await retention(ended + 5 * DAY) == []

    # Ten days after it ended: the transcript, with everything left under its prefix.
    assert await keys_under(derived, transcript.storage_prefix + "/")
    whole = Deletion(
        "transcript",
        transcript.id,
        object_url(derived, transcript.storage_prefix + "/"),
        f"RETENTION_TRANSCRIPT_DAYS=10 (room standup): ended {stamp(ended)}",
    )
    assert await retention(ended + 10 * DAY, dry_run=True) == [whole]
    assert await transcript_row(engine, ok.id) is not None
    assert await retention(ended + 10 * DAY) == [whole]
    assert await transcript_row(engine, ok.id) is None
    assert await keys_under(derived, transcript.storage_prefix + "/") == []
    gone = await client.get(f"/v1/transcripts/{transcript.id}", headers=alice.headers)
    assert gone.status_code == 404
    # The recording's row stays, as the record of what was there.
    assert (await recording_row(engine, ok.id)).object_deleted_at == processed + 2 * DAY

    # The failed recording (and its transcript in error) is never deleted.
    assert await retention(processed + 1000 * DAY) == []
    assert await recordings.size(failed.key) is not None
    failed_row = await recording_row(engine, failed.id)
    assert (failed_row.status, failed_row.object_deleted_at) == ("failed", None)
    assert await transcript_row(engine, failed.id) is not None

    assert await audit(engine) == [
        (raw.kind, raw.subject_id, raw.target, raw.reason, processed + 2 * DAY),
        ("audio", transcript.id, deleted[0].target, deleted[0].reason, ended + 5 * DAY),
        (whole.kind, whole.subject_id, whole.target, whole.reason, ended + 10 * DAY),
    ]


async def test_a_room_override_beats_the_setting(
    engine: AsyncEngine, alice: Account, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, RETENTION_RECORDING_DAYS=1, RETENTION_TRANSCRIPT_DAYS=3)
    recordings = LocalStorage(tmp_path / "bucket")
    derived = LocalStorage(tmp_path / "derived")
    start = utcnow()
    longer = await add_room(engine, alice.user_id, "longer", retention_recording_days=7)
    plain = await add_room(engine, alice.user_id, "plain")
    kept_longer = await add_recording(
        engine, recordings, key="a.mp4", room_id=longer, processed_at=start
    )
    by_setting = await add_recording(
        engine, recordings, key="b.mp4", room_id=plain, processed_at=start
    )
    upload = await add_transcript(
        engine, derived, owner_id=alice.user_id, room_id=None, ended_at=start
    )

    async def retention(now: datetime) -> list[tuple[str, str, str]]:
        done = await apply_retention(engine, recordings, derived, settings, now)
        return [(d.kind, d.subject_id, d.reason.split(":")[0]) for d in done]

    assert await retention(start + DAY) == [
        ("recording", by_setting, "RETENTION_RECORDING_DAYS=1 (setting)")
    ]
    assert await recordings.size("a.mp4") is not None
    # Transcripts without a room (uploads) follow the setting; audio is kept (unset).
    assert await retention(start + 3 * DAY) == [
        ("transcript", upload.id, "RETENTION_TRANSCRIPT_DAYS=3 (setting)")
    ]
    assert await retention(start + 7 * DAY - timedelta(seconds=1)) == []
    assert await retention(start + 7 * DAY) == [
        ("recording", kept_longer, "RETENTION_RECORDING_DAYS=7 (room longer)")
    ]
    assert await recordings.size("a.mp4") is None


async def test_a_room_can_keep_what_the_setting_deletes_and_zero_means_next_pass(
    engine: AsyncEngine, alice: Account, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, RETENTION_AUDIO_DAYS=0)
    derived = LocalStorage(tmp_path / "derived")
    recordings = LocalStorage(tmp_path / "bucket")
    start = utcnow()
    room = await add_room(engine, alice.user_id, "archive", retention_audio_days=365)
    archived = await add_transcript(
        engine, derived, owner_id=alice.user_id, room_id=room, ended_at=start
    )
    upload = await add_transcript(
        engine, derived, owner_id=alice.user_id, room_id=None, ended_at=start
    )
    done = await apply_retention(engine, recordings, derived, settings, start)
    assert [(d.kind, d.subject_id) for d in done] == [("audio", upload.id)]
    assert archived.audio_key is not None
    assert await derived.size(archived.audio_key) is not None
    # Other derived files stay with the transcript.
    assert await derived.size(upload.steps["transcribe"]) is not None


async def test_a_storage_error_skips_one_item_and_the_next_pass_tries_again(
    engine: AsyncEngine, alice: Account, settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"RETENTION_RECORDING_DAYS": 1})
    bucket = LocalStorage(tmp_path / "bucket")
    derived = LocalStorage(tmp_path / "derived")
    start = utcnow()
    room = await add_room(engine, alice.user_id, "standup")
    first = await add_recording(engine, bucket, key="1.mp4", room_id=room, processed_at=start)
    second = await add_recording(engine, bucket, key="2.mp4", room_id=room, processed_at=start)
    flaky = FlakyStorage(bucket, {"1.mp4"})

    done = await apply_retention(engine, flaky, derived, settings, start + DAY)
    assert [d.subject_id for d in done] == [second]
    assert done.failed == 1
    assert "1 could not be made (see the log above)" in summary(done, dry_run=False)
    assert await bucket.size("1.mp4") is not None
    assert (await recording_row(engine, first)).object_deleted_at is None
    assert [row[1] for row in await audit(engine)] == [second]

    done = await apply_retention(engine, bucket, derived, settings, start + 2 * DAY)
    assert [d.subject_id for d in done] == [first]
    assert await bucket.size("1.mp4") is None
    assert [row[1] for row in await audit(engine)] == [second, first]


async def test_nothing_goes_without_a_policy_and_unfinished_work_stays(
    engine: AsyncEngine, alice: Account, settings: Settings, tmp_path: Path
) -> None:
    bucket = LocalStorage(tmp_path / "bucket")
    derived = LocalStorage(tmp_path / "derived")
    start = utcnow()
    room = await add_room(engine, alice.user_id, "standup")
    await add_recording(engine, bucket, key="1.mp4", room_id=room, processed_at=start)
    await add_transcript(engine, derived, owner_id=alice.user_id, room_id=room, ended_at=start)
    later = start + 1000 * DAY
    assert await apply_retention(engine, bucket, derived, settings, later) == []

    strict = settings.model_copy(
        update={
            "RETENTION_RECORDING_DAYS": 0,
            "RETENTION_AUDIO_DAYS": 0,
            "RETENTION_TRANSCRIPT_DAYS": 0,
        }
    )
    for status in (
        RecordingStatus.pending,
        RecordingStatus.processing,
        RecordingStatus.failed,
        RecordingStatus.unmatched,
    ):
        await add_recording(
            engine, bucket, key=f"{status}.mp4", room_id=room, processed_at=start, status=status
        )
    done = await apply_retention(engine, bucket, derived, strict, later, dry_run=True)
    # Only the completed recording and the ended transcript (whose audio goes with it).
    assert sorted(d.kind for d in done) == ["recording", "transcript"]
    assert await audit(engine) == []


async def test_the_server_applies_the_policy_on_its_own(
    engine: AsyncEngine, alice: Account, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, RETENTION_RECORDING_DAYS=0)
    recordings = recording_storage(settings)
    room = await add_room(engine, alice.user_id, "standup")
    recording_id = await add_recording(
        engine, recordings, key="standup.mp4", room_id=room, processed_at=utcnow()
    )
    application = create_app(
        settings, engine=engine, platforms={}, jobs=RecordingJobQueue(), background=True
    )
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        # The first pass runs at start-up; wait for it (at most a generous while).
        for _ in range(300):
            if (await recording_row(engine, recording_id)).object_deleted_at is not None:
                break
            await asyncio.sleep(0.1)
    assert (await recording_row(engine, recording_id)).object_deleted_at is not None
    assert await recordings.size("standup.mp4") is None
    [(kind, subject, _target, reason, _at)] = await audit(engine)
    assert (kind, subject) == ("recording", recording_id)
    assert reason.startswith("RETENTION_RECORDING_DAYS=0 (setting): processed ")
