"""Retention tests run the app with its job queue faked at the seam, and share the rows they
build directly in the database."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db.engine import create_session_factory
from reflector.recordings.models import Recording, RecordingStatus
from reflector.recordings.storage import LocalStorage, Storage
from reflector.transcripts.models import Transcript, TranscriptStatus
from reflector.transcripts.processing import transcript_prefix
from tests.factories import make_room
from tests.fakes.jobs import RecordingJobQueue


@pytest.fixture
def jobs() -> RecordingJobQueue:
    return RecordingJobQueue()


async def add_room(engine: AsyncEngine, owner_id: str, name: str, **retention: int | None) -> str:
    return (await make_room(engine, owner_id, name, **retention)).id


async def add_recording(
    engine: AsyncEngine,
    storage: Storage,
    *,
    key: str,
    room_id: str | None,
    processed_at: datetime,
    status: RecordingStatus = RecordingStatus.completed,
    bucket: str = "whereby",
) -> str:
    """A processed recording whose raw file is in `storage` (a LocalStorage: tests read it
    back with `size`)."""
    await storage.write(key, b"raw recording bytes", "video/mp4")
    async with create_session_factory(engine)() as session:
        recording = Recording(
            bucket=bucket,
            key=key,
            room_id=room_id,
            status=status.value,
            source="sqs",
            processed_at=processed_at,
        )
        session.add(recording)
        await session.commit()
        return recording.id


async def add_transcript(
    engine: AsyncEngine,
    derived: Storage,
    *,
    owner_id: str,
    room_id: str | None,
    ended_at: datetime,
    recording_id: str | None = None,
    status: TranscriptStatus = TranscriptStatus.ended,
) -> Transcript:
    """A transcript with derived files (audio, playback copy, a step output) in `derived`."""
    async with create_session_factory(engine)() as session:
        transcript = Transcript(
            owner_id=owner_id,
            room_id=room_id,
            recording_id=recording_id,
            source="recording" if recording_id else "upload",
            status=status.value,
            steps={},
            storage_prefix="",
            ended_at=ended_at,
        )
        session.add(transcript)
        await session.flush()
        prefix = transcript_prefix(derived, transcript.id)
        transcript.storage_prefix = prefix
        transcript.audio_key = f"{prefix}/audio.wav"
        transcript.playback_key = f"{prefix}/playback.m4a"
        transcript.steps = {"transcribe": f"{prefix}/steps/transcribe.json"}
        for key in (transcript.audio_key, transcript.playback_key, transcript.steps["transcribe"]):
            await derived.write(key, b"derived", "application/octet-stream")
        await session.commit()
        return transcript


class FlakyStorage(LocalStorage):
    """A folder whose deletes of some keys fail, as a bucket refusing them would."""

    def __init__(self, inner: LocalStorage, failing: set[str]) -> None:
        super().__init__(inner.root, inner.prefix)
        self.failing = failing

    async def delete(self, key: str) -> None:
        if key in self.failing:
            raise PermissionError(f"AccessDenied: DeleteObject {key}")
        await super().delete(key)
