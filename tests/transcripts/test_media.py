"""GET/HEAD /v1/transcripts/{id}/audio with HTTP range requests, on local storage and on S3
(moto on loopback), and GET /v1/transcripts/{id}/waveform."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from moto.server import ThreadedMotoServer
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.app import create_app
from reflector.recordings.storage import LocalStorage, ObjectMissing, S3Storage
from reflector.settings import Settings
from reflector.transcripts.media import CHUNK_BYTES, ByteRange, RangeNotSatisfiable, parse_range
from tests.conftest import Account, make_settings
from tests.fakes.jobs import RecordingJobQueue
from tests.recordings.conftest import FAKE_KEY, REGION, aws_client, isolate_from_machine_aws
from tests.transcripts.test_api import derived_of, error_of, make_transcript, store_audio

# Spans more than two read chunks, and is no multiple of one.
SIZE = 2 * CHUNK_BYTES + 12_345
AUDIO = os.urandom(SIZE)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, ByteRange(0, 9)),
        ("bytes=10-", 100, ByteRange(10, 99)),
        ("bytes=-10", 100, ByteRange(90, 99)),
        ("bytes=-1000", 100, ByteRange(0, 99)),
        ("bytes=95-1000", 100, ByteRange(95, 99)),
        ("bytes=99-99", 100, ByteRange(99, 99)),
        ("BYTES = 5 - 6", 100, ByteRange(5, 6)),
        ("bytes=0-1,5-6", 100, None),  # several ranges: the whole object
        ("bytes=9-5", 100, None),  # malformed: ignored
        ("bytes=abc", 100, None),
        ("bytes=-", 100, None),
        ("items=0-5", 100, None),
        ("bytes=100-", 100, RangeNotSatisfiable),
        ("bytes=150-200", 100, RangeNotSatisfiable),
        ("bytes=-0", 100, RangeNotSatisfiable),
        ("bytes=0-", 0, RangeNotSatisfiable),
        ("bytes=-5", 0, RangeNotSatisfiable),
    ],
)
def test_range_headers(
    header: str | None, size: int, expected: ByteRange | type[Exception] | None
) -> None:
    if isinstance(expected, type):
        with pytest.raises(expected):
            parse_range(header, size)
    else:
        assert parse_range(header, size) == expected


async def ended_with_audio(engine: AsyncEngine, settings: Settings, owner: Account) -> str:
    transcript_id = await make_transcript(engine, owner)
    await store_audio(engine, derived_of(settings), transcript_id, AUDIO)
    return transcript_id


async def check_ranges(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], data: bytes
) -> None:
    size = len(data)
    full = await client.get(path, headers=headers)
    assert full.status_code == 200, full.text
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-type"] == "audio/mp4"
    assert full.headers["content-length"] == str(size)
    assert "content-range" not in full.headers
    assert full.content == data

    cases = {
        "bytes=0-99": (0, 99),
        # Across the boundary between two read chunks.
        f"bytes={CHUNK_BYTES - 10}-{CHUNK_BYTES + 9}": (CHUNK_BYTES - 10, CHUNK_BYTES + 9),
        "bytes=1000-": (1000, size - 1),
        "bytes=-500": (size - 500, size - 1),
        f"bytes=10-{size * 2}": (10, size - 1),
        f"bytes=-{size * 2}": (0, size - 1),
        f"bytes={size - 1}-{size - 1}": (size - 1, size - 1),
    }
    for header, (start, end) in cases.items():
        part = await client.get(path, headers={**headers, "Range": header})
        assert part.status_code == 206, (header, part.text)
        assert part.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert part.headers["content-length"] == str(end - start + 1)
        assert part.headers["accept-ranges"] == "bytes"
        assert part.content == data[start : end + 1], header

    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 10}", "bytes=-0"):
        refused = await client.get(path, headers={**headers, "Range": header})
        assert error_of(refused, 416)["error"] == "range_not_satisfiable"
        assert refused.headers["content-range"] == f"bytes */{size}"
        assert f"bytes from 0 to {size - 1}" in refused.json()["detail"]

    for header in ("bytes=0-1,5-6", "bytes=9-5", "pages=1-2"):
        whole = await client.get(path, headers={**headers, "Range": header})
        assert whole.status_code == 200, header
        assert whole.content == data


async def test_audio_answers_range_requests_with_exactly_the_stored_bytes(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, alice: Account
) -> None:
    transcript_id = await ended_with_audio(engine, settings, alice)
    path = f"/v1/transcripts/{transcript_id}/audio"
    stored = (derived_of(settings).root / f"transcripts/{transcript_id}/playback.m4a").read_bytes()
    assert stored == AUDIO
    await check_ranges(client, path, alice.headers, stored)

    head = await client.head(path, headers={**alice.headers, "Range": "bytes=-500"})
    assert head.status_code == 206
    assert head.headers["content-range"] == f"bytes {SIZE - 500}-{SIZE - 1}/{SIZE}"
    assert head.headers["content-length"] == "500"
    assert head.content == b""
    whole_head = await client.head(path, headers=alice.headers)
    assert (whole_head.status_code, whole_head.headers["content-length"]) == (200, str(SIZE))


async def test_audio_and_waveform_wait_for_the_audio_step(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, alice: Account
) -> None:
    transcript_id = await make_transcript(engine, alice, status="processing")
    base = f"/v1/transcripts/{transcript_id}"
    audio = error_of(await client.get(f"{base}/audio", headers=alice.headers), 409)
    assert audio["detail"] == (
        f"The audio of transcript '{transcript_id}' is not ready yet (step transcribe); try "
        "again once its audio step has finished."
    )
    waveform = error_of(await client.get(f"{base}/waveform", headers=alice.headers), 409)
    assert waveform["detail"].startswith(f"The waveform of transcript '{transcript_id}'")

    # The audio step is done while later steps still run: both are there already.
    await store_audio(
        engine, derived_of(settings), transcript_id, b"0123456789", peaks=[0.1, 0.9, 0.4]
    )
    part = await client.get(f"{base}/audio", headers={**alice.headers, "Range": "bytes=2-4"})
    assert (part.status_code, part.content) == (206, b"234")
    shape = await client.get(f"{base}/waveform", headers=alice.headers)
    assert shape.status_code == 200, shape.text
    assert shape.json() == {"duration": 4.0, "peaks": [0.1, 0.9, 0.4]}

    failed = await make_transcript(engine, alice, status="error")
    refused = error_of(
        await client.get(f"/v1/transcripts/{failed}/audio", headers=alice.headers), 409
    )
    assert refused["detail"] == (
        f"Transcript '{failed}' has no audio: its processing failed (The file has no audio track.)."
    )


async def test_audio_removed_from_storage_is_404_with_a_sentence(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, alice: Account
) -> None:
    transcript_id = await ended_with_audio(engine, settings, alice)
    await derived_of(settings).delete(f"transcripts/{transcript_id}/playback.m4a")
    missing = error_of(
        await client.get(f"/v1/transcripts/{transcript_id}/audio", headers=alice.headers), 404
    )
    assert "missing from storage" in missing["detail"]


async def test_local_storage_reads_ranges(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.bin").write_bytes(bytes(range(256)))
    assert await storage.read_range("a/b.bin", 0, 3) == bytes([0, 1, 2, 3])
    assert await storage.read_range("a/b.bin", 250, 300) == bytes(range(250, 256))
    assert await storage.read_range("a/b.bin", 300, 400) == b""
    with pytest.raises(ObjectMissing):
        await storage.read_range("a/missing.bin", 0, 3)
    with pytest.raises(ValueError, match="not a byte range"):
        await storage.read_range("a/b.bin", 5, 4)


# --- S3 -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_settings(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Settings whose derived storage is a fresh bucket on the moto server."""
    isolate_from_machine_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_KEY)
    bucket = f"derived-{os.urandom(4).hex()}"
    aws_client("s3", moto_endpoint).create_bucket(Bucket=bucket)
    return make_settings(
        tmp_path,
        DERIVED_STORAGE_BUCKET=bucket,
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_DEFAULT_REGION=REGION,
    )


async def test_audio_ranges_from_s3_are_read_piece_by_piece(
    engine: AsyncEngine, s3_settings: Settings, alice: Account
) -> None:
    application = create_app(s3_settings, engine=engine, jobs=RecordingJobQueue(), background=False)
    storage = S3Storage(
        str(s3_settings.DERIVED_STORAGE_BUCKET),
        endpoint_url=s3_settings.AWS_ENDPOINT_URL,
        region_name=REGION,
    )
    transcript_id = await make_transcript(engine, alice)
    playback = await store_audio(engine, storage, transcript_id, AUDIO)
    assert await storage.read_range(playback, 5, 9) == AUDIO[5:10]
    assert await storage.read_range(playback, SIZE - 2, SIZE + 100) == AUDIO[-2:]
    assert await storage.read_range(playback, SIZE, SIZE + 10) == b""
    with pytest.raises(ObjectMissing):
        await storage.read_range("transcripts/nothing/playback.m4a", 0, 10)

    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await check_ranges(
                client, f"/v1/transcripts/{transcript_id}/audio", alice.headers, AUDIO
            )
            shape = await client.get(
                f"/v1/transcripts/{transcript_id}/waveform", headers=alice.headers
            )
            assert shape.json()["peaks"] == [0.0, 0.5, 1.0, 0.25]
