"""GET /v1/recordings, GET /v1/recordings/{id}, POST /v1/recordings/{id}/retry, and the job."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.auth import service as auth
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
from tests.fakes.pipeline import scripted_backends
from tests.pipeline.test_audio import video_only_mp4

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "media"


@pytest.fixture
def jobs() -> RecordingJobQueue:
    return RecordingJobQueue()


def key_for(meeting: Meeting) -> str:
    return f"{meeting.platform_room_name.lstrip('/')}-2026-11-28T12:00:05Z.mp4"


async def store(engine: AsyncEngine, jobs: RecordingJobQueue, key: str) -> str:
    received = await Intake(engine, jobs).receive(StoredObject("whereby", key), Source.sqs)
    assert received is not None
    return received.recording_id


async def make_admin(engine: AsyncEngine) -> dict[str, str]:
    async with create_session_factory(engine)() as session:
        admin = await auth.create_user(session, "root@example.com", is_admin=True)
        issued = await auth.create_token(session, admin)
        await session.commit()
    return {"Authorization": f"Bearer {issued.secret}"}


async def test_owners_see_their_recordings_and_admins_all(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    jobs: RecordingJobQueue,
    alice: Account,
    bob: Account,
) -> None:
    meeting = await make_meeting(engine, alice)
    mine = await store(engine, jobs, key_for(meeting))
    orphan = await store(engine, jobs, "nobody-1-2026-11-28T12:00:05Z.mp4")

    listing = await client.get("/v1/recordings", headers=alice.headers)
    assert [r["id"] for r in listing.json()["items"]] == [mine]
    one = await client.get(f"/v1/recordings/{mine}", headers=alice.headers)
    assert one.status_code == 200
    assert one.json()["status"] == "pending"
    assert one.json()["meeting_id"] == meeting.id

    for path in (f"/v1/recordings/{mine}", f"/v1/recordings/{orphan}"):
        assert (await client.get(path, headers=bob.headers)).status_code == 404
    assert (await client.get("/v1/recordings", headers=bob.headers)).json()["items"] == []
    assert (
        await client.post(f"/v1/recordings/{mine}/retry", headers=bob.headers)
    ).status_code == 404

    admin = await make_admin(engine)
    everything = await client.get("/v1/recordings", headers=admin)
    assert {r["id"] for r in everything.json()["items"]} == {mine, orphan}
    unmatched = await client.get("/v1/recordings", params={"status": "unmatched"}, headers=admin)
    assert [r["id"] for r in unmatched.json()["items"]] == [orphan]
    bad = await client.get("/v1/recordings", params={"status": "lost"}, headers=admin)
    assert bad.status_code == 422
    assert "status" in bad.json()["detail"]
    assert (await client.get("/v1/recordings")).status_code == 401


async def test_retry(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    jobs: RecordingJobQueue,
    alice: Account,
    tmp_path: Path,
) -> None:
    meeting = await make_meeting(engine, alice)
    recording_id = await store(engine, jobs, key_for(meeting))
    busy = await client.post(f"/v1/recordings/{recording_id}/retry", headers=alice.headers)
    assert busy.status_code == 409
    assert "only failed or unmatched" in busy.json()["detail"]

    folder = LocalStorage(tmp_path / "empty-bucket")
    status = await process_recording(
        recording_id,
        engine=engine,
        recordings=folder,
        derived=folder,
        backends=scripted_backends()[0],
    )
    assert status == "failed"
    failed = (await client.get(f"/v1/recordings/{recording_id}", headers=alice.headers)).json()
    assert "no longer in" in failed["error"]

    retried = await client.post(f"/v1/recordings/{recording_id}/retry", headers=alice.headers)
    assert retried.status_code == 202
    assert retried.json()["status"] == "pending"
    assert retried.json()["error"] is None
    assert len(jobs.enqueued) == 2


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"this is not a video\n" * 50, "not a media file"),
        ("truncated", "incomplete"),
        ("video-only", "no audio track"),
    ],
    ids=["zero-bytes", "text-named-mp4", "truncated", "video-without-audio"],
)
async def test_bad_files_fail_with_a_sentence_and_the_next_job_runs(
    engine: AsyncEngine,
    jobs: RecordingJobQueue,
    alice: Account,
    tmp_path: Path,
    content: bytes | str,
    words: str,
) -> None:
    meeting = await make_meeting(engine, alice)
    recordings = LocalStorage(tmp_path / "bucket")
    derived = LocalStorage(tmp_path / "derived")
    bad_key = key_for(meeting)
    good_key = bad_key.replace("12:00:05", "12:30:00")
    talk = (FIXTURES / "talk.mp4").read_bytes()
    if content == "video-only":
        data = video_only_mp4(tmp_path / "silent-film.mp4").read_bytes()
    else:
        data = talk[: len(talk) // 3] if content == "truncated" else content
    assert isinstance(data, bytes)
    await recordings.write(bad_key, data, "video/mp4")
    shutil.copyfile(FIXTURES / "talk.mp4", tmp_path / "talk.mp4")
    await recordings.upload(good_key, tmp_path / "talk.mp4", "video/mp4")
    bad = await store(engine, jobs, bad_key)
    good = await store(engine, jobs, good_key)

    backends = scripted_backends()[0]

    async def run(recording_id: str) -> str:
        return await process_recording(
            recording_id,
            engine=engine,
            recordings=recordings,
            derived=derived,
            backends=backends,
            workdir=tmp_path,
        )

    assert await run(bad) == "failed"
    assert await run(good) == "completed"
    # A job delivered twice does nothing the second time.
    assert await run(good) == "skipped"
    async with create_session_factory(engine)() as session:
        rows = {r.id: r for r in await session.scalars(select(Recording))}
    assert words in (rows[bad].error or "")
    async with create_session_factory(engine)() as session:
        transcripts = {t.recording_id: t for t in await session.scalars(select(Transcript))}
    assert transcripts[bad].status == "error"
    assert transcripts[bad].error == rows[bad].error
    assert transcripts[good].status == "ended"
    assert rows[good].transcript_id == transcripts[good].id
    assert rows[good].duration == pytest.approx(24.7, abs=0.3)
    assert rows[good].attempts == 1
    assert transcripts[good].audio_key is not None
    assert await derived.size(transcripts[good].audio_key) is not None
    assert list(tmp_path.glob("rec_*")) == []
