"""DELETE /v1/transcripts/{id} deletes what the policy says, and a recording whose raw file
is gone is not processed again."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db.base import utcnow
from reflector.db.engine import create_session_factory
from reflector.recordings.models import Recording, RecordingStatus
from reflector.recordings.storage import LocalStorage, Storage, recording_storage
from reflector.retention.apply import object_url
from reflector.retention.models import RetentionDeletion
from reflector.settings import Settings
from reflector.transcripts.models import Transcript, TranscriptStatus
from tests.conftest import Account
from tests.retention.conftest import FlakyStorage, add_recording, add_room, add_transcript


async def recording(engine: AsyncEngine, recording_id: str) -> Recording:
    async with create_session_factory(engine)() as session:
        row = await session.get(Recording, recording_id)
        assert row is not None
        return row


async def audit_reasons(engine: AsyncEngine) -> list[tuple[str, str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                RetentionDeletion.kind, RetentionDeletion.subject_id, RetentionDeletion.reason
            ).order_by(RetentionDeletion.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def recorded_transcript(
    engine: AsyncEngine,
    recordings: Storage,
    derived: Storage,
    owner: Account,
    *,
    failed: bool = False,
    **policy: int,
) -> tuple[str, Transcript]:
    """A `standup` room with the retention `policy`, its recording `standup.mp4` processed
    just now, and that recording's transcript (a failed one and its transcript in error with
    `failed`): (recording id, transcript)."""
    room = await add_room(engine, owner.user_id, "standup", **policy)
    recording_id = await add_recording(
        engine,
        recordings,
        key="standup.mp4",
        room_id=room,
        processed_at=utcnow(),
        status=RecordingStatus.failed if failed else RecordingStatus.completed,
    )
    transcript = await add_transcript(
        engine,
        derived,
        owner_id=owner.user_id,
        room_id=room,
        ended_at=utcnow(),
        recording_id=recording_id,
        status=TranscriptStatus.error if failed else TranscriptStatus.ended,
    )
    return recording_id, transcript


async def test_deleting_a_transcript_deletes_its_raw_recording_when_the_room_says_so(
    app: FastAPI,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    alice: Account,
) -> None:
    recordings = recording_storage(settings)
    derived: Storage = app.state.derived_storage
    # A failed recording: its transcript is in error, and its owner deletes it.
    recording_id, transcript = await recorded_transcript(
        engine, recordings, derived, alice, failed=True, retention_recording_days=30
    )

    deleted = await client.delete(f"/v1/transcripts/{transcript.id}", headers=alice.headers)
    assert deleted.status_code == 204, deleted.text
    assert await recordings.size("standup.mp4") is None
    assert transcript.audio_key is not None
    assert await derived.size(transcript.audio_key) is None
    row = await recording(engine, recording_id)
    assert row.object_deleted_at is not None
    assert await audit_reasons(engine) == [
        (
            "recording",
            recording_id,
            "RETENTION_RECORDING_DAYS=30 (room standup): its transcript "
            f"{transcript.id} was deleted through the API",
        )
    ]

    # Its file is gone: a retry is refused with the reason, and nothing changes.
    retried = await client.post(f"/v1/recordings/{recording_id}/retry", headers=alice.headers)
    assert retried.status_code == 409
    detail = retried.json()["detail"]
    assert f"Recording {recording_id} cannot be processed again" in detail
    assert "its file was deleted by retention on" in detail
    assert "RETENTION_RECORDING_DAYS=30 (room standup)" in detail
    assert (await recording(engine, recording_id)).status == "failed"
    assert object_url(recordings, "standup.mp4").startswith("file://")


async def test_without_a_recording_policy_the_raw_recording_is_kept(
    app: FastAPI,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    alice: Account,
) -> None:
    recordings = recording_storage(settings)
    derived: Storage = app.state.derived_storage
    # Audio and transcript policies say nothing about the raw recording.
    recording_id, transcript = await recorded_transcript(
        engine, recordings, derived, alice, retention_audio_days=1, retention_transcript_days=1
    )
    deleted = await client.delete(f"/v1/transcripts/{transcript.id}", headers=alice.headers)
    assert deleted.status_code == 204
    assert await recordings.size("standup.mp4") is not None
    row = await recording(engine, recording_id)
    assert row.object_deleted_at is None
    assert await audit_reasons(engine) == []


async def test_when_the_raw_recording_cannot_be_deleted_nothing_is(
    app: FastAPI,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    alice: Account,
) -> None:
    recordings = recording_storage(settings)
    assert isinstance(recordings, LocalStorage)
    derived: Storage = app.state.derived_storage
    # The bucket refuses deletes (a read-only IAM policy, say).
    app.state.recording_storage = FlakyStorage(recordings, {"standup.mp4"})
    recording_id, transcript = await recorded_transcript(
        engine, recordings, derived, alice, retention_recording_days=0
    )
    refused = await client.delete(f"/v1/transcripts/{transcript.id}", headers=alice.headers)
    assert refused.status_code == 503
    detail = refused.json()["detail"]
    assert f"Transcript '{transcript.id}' was not deleted" in detail
    assert "s3:DeleteObject" in detail
    assert (await client.get(f"/v1/transcripts/{transcript.id}", headers=alice.headers)).is_success
    assert transcript.audio_key is not None
    assert await derived.size(transcript.audio_key) is not None
    assert await recordings.size("standup.mp4") is not None
    assert (await recording(engine, recording_id)).object_deleted_at is None
    assert await audit_reasons(engine) == []
