"""POST /v1/transcripts: an uploaded file becomes a transcript through the upload job; bodies
are streamed to disk, refusals leave nothing behind (no row, no object, no temporary file)."""

from __future__ import annotations

import asyncio
import dataclasses
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.app import create_app
from reflector.db.engine import create_session_factory
from reflector.errors import PayloadTooLarge
from reflector.pipeline.types import Progress, Transcription
from reflector.settings import Settings
from reflector.transcripts.models import Transcript
from reflector.transcripts.processing import PROCESS_UPLOAD, process_upload
from reflector.transcripts.uploads import clean_filename, receive_file, source_extension
from tests.conftest import Account, make_settings
from tests.factories import make_room
from tests.fakes.jobs import RecordingJobQueue
from tests.fakes.pipeline import ScriptedTranscriber, scripted_backends
from tests.transcripts.test_api import derived_of, error_of

MEDIA = Path(__file__).resolve().parent.parent / "fixtures" / "media"
TALK = MEDIA / "talk.m4a"


@asynccontextmanager
async def serving(
    engine: AsyncEngine, settings: Settings, jobs: RecordingJobQueue
) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings, engine=engine, jobs=jobs, background=False)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def transcript_count(engine: AsyncEngine) -> int:
    async with create_session_factory(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(Transcript)) or 0)


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


async def assert_nothing_left(engine: AsyncEngine, settings: Settings) -> None:
    assert await transcript_count(engine) == 0
    assert files_under(settings.DATA_DIR / "derived") == []
    assert files_under(settings.DATA_DIR / "uploads") == []


async def upload(
    client: httpx.AsyncClient,
    account: Account,
    path: Path,
    *,
    name: str | None = None,
    content_type: str = "audio/mp4",
    data: dict[str, str] | None = None,
) -> httpx.Response:
    with path.open("rb") as file:
        return await client.post(
            "/v1/transcripts",
            files={"file": (name or path.name, file, content_type)},
            data=data or {},
            headers=account.headers,
        )


async def test_an_upload_becomes_a_transcript_and_delete_removes_it(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    jobs: RecordingJobQueue,
    alice: Account,
    bob: Account,
    tmp_path: Path,
) -> None:
    room_id = (await make_room(engine, alice.user_id, "standup")).id
    response = await upload(
        client,
        alice,
        TALK,
        name="Team call.m4a",
        data={"room": "standup", "speakers": "2", "language": "en"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    transcript_id = body["id"]
    assert (body["status"], body["source"], body["filename"], body["share_mode"]) == (
        "processing",
        "upload",
        "Team call.m4a",
        "private",
    )
    assert body["room_id"] == room_id
    assert body["words"] == []
    assert jobs.enqueued == [(PROCESS_UPLOAD, (transcript_id, "en", "2"), None)]

    derived = derived_of(settings)
    prefix = f"transcripts/{transcript_id}"
    source = derived.root / prefix / "source.m4a"
    assert source.read_bytes() == TALK.read_bytes()
    assert files_under(settings.DATA_DIR / "uploads") == []
    assert (
        await client.get(f"/v1/transcripts/{transcript_id}", headers=bob.headers)
    ).status_code == 404

    backends, _, diarizer = scripted_backends()

    async def run() -> str:
        return await process_upload(
            transcript_id,
            engine=engine,
            derived=derived,
            backends=backends,
            language="en",
            num_speakers=2,
            workdir=tmp_path,
        )

    assert await run() == "ended"
    assert diarizer.seen_num_speakers == [2]
    assert await run() == "skipped"  # a redelivered job has nothing to do

    got = (await client.get(f"/v1/transcripts/{transcript_id}", headers=alice.headers)).json()
    assert got["status"] == "ended"
    assert got["error"] is None
    assert got["words"]
    assert got["title"]
    assert got["duration"] == pytest.approx(24.7, abs=0.3)
    listed = (await client.get("/v1/transcripts?room=standup", headers=alice.headers)).json()
    assert [item["id"] for item in listed["items"]] == [transcript_id]

    playback = (derived.root / prefix / "playback.m4a").read_bytes()
    audio = await client.get(f"/v1/transcripts/{transcript_id}/audio", headers=alice.headers)
    assert (audio.status_code, audio.headers["content-type"]) == (200, "audio/mp4")
    assert audio.content == playback
    part = await client.get(
        f"/v1/transcripts/{transcript_id}/audio",
        headers={**alice.headers, "Range": "bytes=100-199"},
    )
    assert (part.status_code, part.content) == (206, playback[100:200])
    waveform = (
        await client.get(f"/v1/transcripts/{transcript_id}/waveform", headers=alice.headers)
    ).json()
    assert waveform["duration"] == pytest.approx(got["duration"])
    assert waveform["peaks"]
    assert all(0.0 <= p <= 1.0 for p in waveform["peaks"])
    vtt = await client.get(
        f"/v1/transcripts/{transcript_id}/export?format=vtt", headers=alice.headers
    )
    assert vtt.text.startswith("WEBVTT")

    stored = files_under(derived.root / prefix)
    assert {p.name for p in stored} >= {"source.m4a", "playback.m4a", "audio.wav", "audio.json"}
    deleted = await client.delete(f"/v1/transcripts/{transcript_id}", headers=alice.headers)
    assert deleted.status_code == 204
    assert files_under(derived.root) == []
    assert await transcript_count(engine) == 0


class DeletingTranscriber(ScriptedTranscriber):
    """Transcribes as scripted, but first has the owner delete the transcript through the API,
    as if they did while the job ran (the step runs in a worker thread)."""

    def __init__(self, delete: Callable[[], Awaitable[httpx.Response]]) -> None:
        super().__init__()
        self.delete = delete
        self.loop = asyncio.get_running_loop()
        self.status: int | None = None

    def transcribe(self, wav: Path, *, language: str | None, progress: Progress) -> Transcription:
        async def delete() -> int:
            return (await self.delete()).status_code

        self.status = asyncio.run_coroutine_threadsafe(delete(), self.loop).result(timeout=30)
        return super().transcribe(wav, language=language, progress=progress)


async def test_a_transcript_deleted_while_its_job_runs_leaves_nothing(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    alice: Account,
    tmp_path: Path,
) -> None:
    response = await upload(client, alice, TALK)
    transcript_id = response.json()["id"]
    transcriber = DeletingTranscriber(
        lambda: client.delete(f"/v1/transcripts/{transcript_id}", headers=alice.headers)
    )
    backends, _, _ = scripted_backends()
    status = await process_upload(
        transcript_id,
        engine=engine,
        derived=derived_of(settings),
        backends=dataclasses.replace(backends, transcriber=transcriber),
        workdir=tmp_path,
    )
    assert transcriber.status == 204
    assert status == "skipped"
    # What the job wrote after the delete (the transcription step's output) went too.
    await assert_nothing_left(engine, settings)


async def test_a_file_that_is_not_media_ends_in_error_with_a_sentence(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    jobs: RecordingJobQueue,
    alice: Account,
    tmp_path: Path,
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a recording\n" * 100)
    response = await upload(client, alice, notes, content_type="text/plain")
    assert response.status_code == 202, response.text
    transcript_id = response.json()["id"]
    assert response.json()["filename"] == "notes.txt"
    assert (derived_of(settings).root / f"transcripts/{transcript_id}/source.bin").is_file()
    assert jobs.enqueued == [(PROCESS_UPLOAD, (transcript_id, "", ""), None)]

    backends, transcriber, _ = scripted_backends()
    status = await process_upload(
        transcript_id, engine=engine, derived=derived_of(settings), backends=backends
    )
    assert status == "error"
    assert transcriber.calls == 0
    body = (await client.get(f"/v1/transcripts/{transcript_id}", headers=alice.headers)).json()
    assert body["status"] == "error"
    assert body["error"]
    assert body["error"].endswith(".")


async def test_an_upload_over_the_limit_is_413_and_leaves_nothing(
    engine: AsyncEngine, jobs: RecordingJobQueue, alice: Account, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, MAX_UPLOAD_BYTES=4096)
    big = tmp_path / "big.m4a"
    big.write_bytes(b"x" * 10_000)
    async with serving(engine, settings, jobs) as client:
        # Told by Content-Length: refused before the body is read.
        declared = await upload(client, alice, big)
        assert error_of(declared, 413)["error"] == "payload_too_large"
        assert "4096 bytes" in declared.json()["detail"]
        await assert_nothing_left(engine, settings)

        # Sent without a length (chunked): refused while it streams in.
        boundary = "reflector-test-boundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="big.m4a"\r\nContent-Type: audio/mp4\r\n\r\n'
        ).encode()

        async def body() -> AsyncIterator[bytes]:
            yield head
            for _ in range(10):
                yield b"x" * 1000
            yield f"\r\n--{boundary}--\r\n".encode()

        chunked = await client.post(
            "/v1/transcripts",
            content=body(),
            headers={
                **alice.headers,
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        assert error_of(chunked, 413)["error"] == "payload_too_large"
        assert "4096 bytes" in chunked.json()["detail"]
        await assert_nothing_left(engine, settings)
    assert jobs.enqueued == []


def multipart(boundary: str, parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


async def test_reading_stops_as_soon_as_the_file_passes_the_limit(tmp_path: Path) -> None:
    body = multipart("b0undary", [("file", "a.mp4", b"y" * 50_000), ("room", None, b"x")])
    taken = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal taken
        for start in range(0, len(body), 1000):
            taken += 1
            yield body[start : start + 1000]

    folder = tmp_path / "uploads"
    with pytest.raises(PayloadTooLarge) as refused:
        await receive_file(
            chunks(), "multipart/form-data; boundary=b0undary", limit=10_000, folder=folder
        )
    assert refused.value.detail == (
        "The file is larger than MAX_UPLOAD_BYTES (10000 bytes); send a smaller file, or ask "
        "the administrator to raise MAX_UPLOAD_BYTES."
    )
    assert refused.value.status_code == 413
    assert taken <= 12  # about 10 kB read of 50
    assert files_under(folder) == []

    received = await receive_file(
        chunks(), "multipart/form-data; boundary=b0undary", limit=50_000, folder=folder
    )
    assert (received.size, received.filename, received.fields) == (50_000, "a.mp4", {"room": "x"})
    assert received.path.read_bytes() == b"y" * 50_000
    received.discard()
    assert files_under(folder) == []


BOUNDARY = "reflector-form"


@pytest.mark.parametrize(
    ("parts", "content_type", "status", "detail"),
    [
        (
            [("file", "empty.m4a", b"")],
            None,
            422,
            "Invalid request: file: the file is empty; send the recording itself.",
        ),
        (
            [("room", None, b"standup")],
            None,
            422,
            "Invalid request: file is required; send the recording as multipart/form-data with "
            "a field named 'file' (curl -F file=@x.mp4).",
        ),
        (
            [("file", "a.m4a", b"data"), ("colour", None, b"red")],
            None,
            422,
            "Invalid request: unknown field 'colour'; accepted fields are file, room, language, "
            "speakers.",
        ),
        (
            [("file", "a.m4a", b"data"), ("file", "b.m4a", b"data")],
            None,
            422,
            "Invalid request: file: send one file per upload.",
        ),
        (
            [("file", "a.m4a", b"data"), ("speakers", None, b"many")],
            None,
            422,
            "Invalid request: speakers: give how many people speak, a whole number from 1 to "
            "100 (got 'many').",
        ),
        (
            [("file", "a.m4a", b"data"), ("speakers", None, b"0")],
            None,
            422,
            "Invalid request: speakers: give how many people speak, a whole number from 1 to "
            "100 (got '0').",
        ),
        (
            [("file", "a.m4a", b"data"), ("language", None, b"english")],
            None,
            422,
            "Invalid request: language: give a code such as en or de, or auto to detect it "
            "(got 'english').",
        ),
        (
            [("file", "a.m4a", b"data"), ("room", None, b"bobs-room")],
            None,
            422,
            "Invalid request: room: no room 'bobs-room' among yours; give the id or the name "
            "of one of your rooms (GET /v1/rooms lists them).",
        ),
        (
            [("file", "a.m4a", b"data")],
            "application/json",
            415,
            "The body was sent as 'application/json'; send the recording as "
            "multipart/form-data with a field named 'file' (curl -F file=@x.mp4).",
        ),
        (
            [("file", "a.m4a", b"data")],
            "multipart/form-data",
            400,
            "The multipart Content-Type has no boundary; send the recording as "
            "multipart/form-data with a field named 'file' (curl -F file=@x.mp4).",
        ),
    ],
)
async def test_bad_uploads_are_refused_with_a_sentence_and_leave_nothing(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    jobs: RecordingJobQueue,
    alice: Account,
    bob: Account,
    parts: list[tuple[str, str | None, bytes]],
    content_type: str | None,
    status: int,
    detail: str,
) -> None:
    await make_room(engine, bob.user_id, "bobs-room")
    response = await client.post(
        "/v1/transcripts",
        content=multipart(BOUNDARY, parts),
        headers={
            **alice.headers,
            "Content-Type": content_type or f"multipart/form-data; boundary={BOUNDARY}",
        },
    )
    assert error_of(response, status)["detail"] == detail
    await assert_nothing_left(engine, settings)
    assert jobs.enqueued == []


async def test_uploads_need_a_token(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    response = await client.post("/v1/transcripts", files={"file": ("a.m4a", b"data")})
    assert error_of(response, 401)["error"] == "unauthorized"
    await assert_nothing_left(engine, settings)


async def test_a_queue_that_refuses_the_job_is_503_and_nothing_is_kept(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    jobs: RecordingJobQueue,
    alice: Account,
) -> None:
    jobs.fail_next = 1
    response = await upload(client, alice, TALK)
    body = error_of(response, 503)
    assert body["detail"] == (
        "The job queue did not take the upload's job (ConnectionError); nothing was kept. Try "
        "again in a moment; if it keeps failing, check that the broker (CELERY_BROKER_URL or "
        "REDIS_URL) answers."
    )
    assert response.headers["retry-after"] == "5"
    await assert_nothing_left(engine, settings)
    # The next try goes through.
    assert (await upload(client, alice, TALK)).status_code == 202


async def test_a_large_upload_is_streamed_not_held_in_memory(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    alice: Account,
    tmp_path: Path,
) -> None:
    size = 50 * 1024 * 1024
    large = tmp_path / "long-meeting.mp4"
    with large.open("wb") as file:
        file.truncate(size)  # sparse: quick to make, read back as zeros
    tracemalloc.start()
    try:
        response = await upload(client, alice, large, content_type="video/mp4")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 202, response.text
    # Client and server together, the file passing through in 64 KiB pieces.
    assert peak < size / 10, f"peak Python memory {peak} bytes for a {size}-byte upload"
    stored = derived_of(settings).root / f"transcripts/{response.json()['id']}/source.mp4"
    assert stored.stat().st_size == size
    assert files_under(settings.DATA_DIR / "uploads") == []


@pytest.mark.parametrize(
    ("raw", "clean", "extension"),
    [
        ("Team call.m4a", "Team call.m4a", ".m4a"),
        ("../../etc/passwd", "passwd", ".bin"),
        ("C:\\Users\\ada\\Weekly.MP3", "Weekly.MP3", ".mp3"),
        ("bad\x00name\x1b.webm", "badname.webm", ".webm"),
        ("  spaced   out .ogg  ", "spaced out .ogg", ".ogg"),
        ("", "upload", ".bin"),
        ("...", "upload", ".bin"),
        ("notes.txt", "notes.txt", ".bin"),
        ("a" * 300 + ".mkv", "a" * 251 + ".mkv", ".mkv"),
    ],
)
def test_file_names_are_cleaned(raw: str, clean: str, extension: str) -> None:
    assert clean_filename(raw) == clean
    assert source_extension(clean_filename(raw)) == extension
