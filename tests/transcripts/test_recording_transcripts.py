"""A room recording becomes a transcript: created by the job, named from the participants the
webhooks reported when the evidence is unambiguous, read through GET /v1/transcripts/{id}."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db.engine import create_session_factory
from reflector.meetings.models import Meeting
from reflector.recordings.intake import Intake
from reflector.recordings.models import Recording
from reflector.recordings.objects import Source, StoredObject
from reflector.recordings.processing import process_recording
from reflector.recordings.storage import LocalStorage
from reflector.transcripts.models import Transcript
from tests.conftest import Account
from tests.factories import make_meeting
from tests.fakes.jobs import RecordingJobQueue
from tests.fakes.pipeline import WorkerDied, scripted_backends
from tests.webhooks.test_whereby_webhook import post_event
from tests.webhooks.whereby_events import client_event

MEDIA = Path(__file__).resolve().parent.parent / "fixtures" / "media"
# The recording starts 5 s after the events' base time (tests/webhooks/whereby_events.py).
RECORDING_START = 5.0


def recording_key(meeting: Meeting) -> str:
    return f"{meeting.platform_room_name.lstrip('/')}-2026-11-28T12:00:05Z.mp4"


async def presence(
    client: httpx.AsyncClient, meeting: Meeting, moves: list[tuple[str, str, float]]
) -> None:
    """Post joined/left events; times are seconds from the recording's start."""
    count = 0
    for kind, name, seconds in moves:
        count += 1 if kind == "joined" else -1
        event = client_event(
            kind,
            meeting.platform_meeting_id,
            meeting.platform_room_name,
            f"pid-{name}",
            count,
            name=name,
            created=RECORDING_START + seconds,
        )
        assert (await post_event(client, event)).status_code == 200
    recorder = client_event(
        "joined",
        meeting.platform_meeting_id,
        meeting.platform_room_name,
        "pid-recorder",
        count + 1,
        name="Recorder",
        role="recorder",
        created=RECORDING_START,
    )
    assert (await post_event(client, recorder)).status_code == 200


async def stored_recording(engine: AsyncEngine, meeting: Meeting, tmp_path: Path) -> str:
    bucket = LocalStorage(tmp_path / "bucket")
    shutil.copyfile(MEDIA / "talk.mp4", tmp_path / "talk.mp4")
    await bucket.upload(recording_key(meeting), tmp_path / "talk.mp4", "video/mp4")
    received = await Intake(engine, RecordingJobQueue()).receive(
        StoredObject("bucket", recording_key(meeting)), Source.sqs
    )
    assert received is not None
    return received.recording_id


async def transcript_of(engine: AsyncEngine, recording_id: str) -> Transcript:
    async with create_session_factory(engine)() as session:
        row = await session.scalar(
            select(Transcript).where(Transcript.recording_id == recording_id)
        )
        assert row is not None
        return row


@pytest.mark.parametrize(
    ("moves", "names"),
    [
        # Ada alone while the first voice speaks (0-12.35 s), Ben alone for the second.
        (
            [("joined", "Ada", -5), ("joined", "Ben", 12.4), ("left", "Ada", 12.5)],
            ["Ada", "Ben"],
        ),
        # Both there all along: nothing tells the voices apart.
        ([("joined", "Ada", -5), ("joined", "Ben", -4)], ["Speaker 1", "Speaker 2"]),
    ],
)
async def test_a_recording_ends_as_a_transcript_named_from_its_participants(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    alice: Account,
    bob: Account,
    tmp_path: Path,
    moves: list[tuple[str, str, float]],
    names: list[str],
) -> None:
    meeting = await make_meeting(engine, alice)
    await presence(client, meeting, moves)
    recording_id = await stored_recording(engine, meeting, tmp_path)
    backends, _, diarizer = scripted_backends()
    status = await process_recording(
        recording_id,
        engine=engine,
        recordings=LocalStorage(tmp_path / "bucket"),
        derived=LocalStorage(tmp_path / "derived"),
        backends=backends,
        workdir=tmp_path,
    )
    assert status == "completed"
    assert diarizer.seen_num_speakers == [2]  # the people, not the recorder
    row = await transcript_of(engine, recording_id)
    got = await client.get(f"/v1/transcripts/{row.id}", headers=alice.headers)
    assert got.status_code == 200
    body = got.json()
    assert body["status"] == "ended"
    assert (body["recording_id"], body["meeting_id"]) == (recording_id, meeting.id)
    assert body["room_id"] == meeting.room_id
    assert [s["name"] for s in body["speakers"]] == names
    assert body["title"]
    assert body["short_summary"]
    assert body["long_summary"]
    assert body["words"]
    assert body["segments"]
    assert body["topics"]
    assert body["duration"] == pytest.approx(24.7, abs=0.3)

    hidden = await client.get(f"/v1/transcripts/{row.id}", headers=bob.headers)
    assert hidden.status_code == 404
    assert (await client.get("/v1/transcripts/trn_nope", headers=alice.headers)).status_code == 404


async def test_a_failed_step_ends_in_error_and_a_retry_resumes(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account, tmp_path: Path
) -> None:
    meeting = await make_meeting(engine, alice)
    recording_id = await stored_recording(engine, meeting, tmp_path)
    backends, transcriber, diarizer = scripted_backends()

    async def run() -> str:
        return await process_recording(
            recording_id,
            engine=engine,
            recordings=LocalStorage(tmp_path / "bucket"),
            derived=LocalStorage(tmp_path / "derived"),
            backends=backends,
            workdir=tmp_path,
        )

    # The worker dies inside diarization: the recording stays "processing" for redelivery.
    diarizer.die = True
    with pytest.raises(WorkerDied):
        await run()
    row = await transcript_of(engine, recording_id)
    assert (row.status, row.step) == ("processing", "diarize")
    assert set(row.steps) == {"audio", "transcribe"}

    diarizer.fail_with = "The audio has no speech the diarizer could use."
    assert await run() == "failed"
    row = await transcript_of(engine, recording_id)
    assert row.status == "error"
    assert row.error == "The audio has no speech the diarizer could use."
    body = (await client.get(f"/v1/transcripts/{row.id}", headers=alice.headers)).json()
    assert (body["status"], body["error"]) == ("error", row.error)
    assert transcriber.calls == 1

    # `reflector recordings retry` puts it back to pending; the next job resumes.
    retried = await client.post(f"/v1/recordings/{recording_id}/retry", headers=alice.headers)
    assert retried.status_code == 202
    diarizer.fail_with = None
    assert await run() == "completed"
    row = await transcript_of(engine, recording_id)
    assert (row.status, row.error) == ("ended", None)
    assert transcriber.calls == 1  # never redone
    async with create_session_factory(engine)() as session:
        recording = await session.get(Recording, recording_id)
        assert recording is not None
        assert (recording.status, recording.attempts) == ("completed", 3)
