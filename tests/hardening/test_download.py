"""GET /v1/recordings/{id}/download: for the owner of the recording's room only. S3 storage
answers 307 to a signed link (moto serves it), a local folder streams the file, a file that
retention deleted is 410."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db.base import utcnow
from reflector.recordings.intake import Intake
from reflector.recordings.models import Recording
from reflector.recordings.objects import Source, StoredObject
from reflector.settings import Settings
from tests.conftest import WEBHOOK_SECRET, Account, make_settings
from tests.factories import make_meeting
from tests.fakes.jobs import RecordingJobQueue
from tests.recordings.conftest import aws_client, unique_name
from tests.recordings.test_recordings_api import key_for, make_admin

LINK_SECONDS = 120
CONTENT = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40


@pytest.fixture
def jobs() -> RecordingJobQueue:
    return RecordingJobQueue()


@pytest.fixture(params=["s3", "local"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "local":
        return make_settings(
            tmp_path, WHEREBY_WEBHOOK_SECRET=WEBHOOK_SECRET, PRESIGNED_URL_SECONDS=LINK_SECONDS
        )
    endpoint: str = request.getfixturevalue("aws_env")
    bucket = unique_name("downloads")
    aws_client("s3", endpoint).create_bucket(Bucket=bucket)
    return make_settings(
        tmp_path,
        WHEREBY_WEBHOOK_SECRET=WEBHOOK_SECRET,
        WHEREBY_API_KEY="wbk-download-test-key",
        RECORDING_STORAGE_AWS_BUCKET_NAME=bucket,
        PRESIGNED_URL_SECONDS=LINK_SECONDS,
    )


async def stored_recording(
    engine: AsyncEngine, jobs: RecordingJobQueue, settings: Settings, owner: Account
) -> tuple[str, str]:
    """A recording of `owner`'s room whose file is in the configured storage: (id, key)."""
    meeting = await make_meeting(engine, owner)
    key = key_for(meeting)
    bucket = settings.RECORDING_STORAGE_AWS_BUCKET_NAME
    if bucket:
        endpoint = settings.AWS_ENDPOINT_URL
        assert endpoint is not None
        aws_client("s3", endpoint).put_object(Bucket=bucket, Key=key, Body=CONTENT)
    else:
        path = settings.recordings_dir / "whereby" / key
        path.parent.mkdir(parents=True)
        path.write_bytes(CONTENT)
    received = await Intake(engine, jobs).receive(
        StoredObject(bucket or "whereby", key), Source.sqs
    )
    assert received is not None
    return received.recording_id, key


async def test_owner_downloads_and_nobody_else_learns_anything(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    jobs: RecordingJobQueue,
    settings: Settings,
    alice: Account,
    bob: Account,
) -> None:
    recording_id, key = await stored_recording(engine, jobs, settings, alice)
    path = f"/v1/recordings/{recording_id}/download"

    answer = await client.get(path, headers=alice.headers)
    assert answer.headers["cache-control"] == "private, no-store"
    if settings.RECORDING_STORAGE_AWS_BUCKET_NAME:
        assert answer.status_code == 307, answer.text
        link = answer.headers["location"]
        query = parse_qs(urlsplit(link).query)
        assert query["X-Amz-Expires"] == [str(LINK_SECONDS)]
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert unquote(urlsplit(link).path).endswith(key)
        # The link itself works, over HTTP, without our token.
        async with httpx.AsyncClient(timeout=10) as outside:
            fetched = await outside.get(link)
        assert fetched.status_code == 200
        assert fetched.content == CONTENT
    else:
        assert answer.status_code == 200, answer.text
        assert answer.content == CONTENT
        assert answer.headers["content-type"] == "video/mp4"
        assert answer.headers["content-disposition"].startswith("attachment; filename=")
        part = await client.get(path, headers={**alice.headers, "Range": "bytes=4-11"})
        assert part.status_code == 206
        assert part.content == CONTENT[4:12]

    admin = await make_admin(engine)
    for headers in (bob.headers, admin):
        refused = await client.get(path, headers=headers)
        assert refused.status_code == 404
        assert refused.json()["error"] == "not_found"
        assert "location" not in refused.headers
        assert "X-Amz" not in refused.text
        assert key not in refused.text
    assert (await client.get(path)).status_code == 401
    missing = await client.get("/v1/recordings/rec_nope/download", headers=alice.headers)
    assert missing.status_code == 404


async def test_a_file_deleted_by_retention_is_gone(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    jobs: RecordingJobQueue,
    settings: Settings,
    alice: Account,
) -> None:
    recording_id, _key = await stored_recording(engine, jobs, settings, alice)
    async with engine.begin() as conn:
        await conn.execute(
            update(Recording).where(Recording.id == recording_id).values(object_deleted_at=utcnow())
        )
    gone = await client.get(f"/v1/recordings/{recording_id}/download", headers=alice.headers)
    assert gone.status_code == 410
    assert gone.json()["error"] == "gone"
    assert "deleted" in gone.json()["detail"]
    assert "retention" in gone.json()["detail"]
    assert "location" not in gone.headers


async def test_a_file_missing_from_storage_is_explained(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    jobs: RecordingJobQueue,
    alice: Account,
) -> None:
    meeting = await make_meeting(engine, alice)
    received = await Intake(engine, jobs).receive(
        StoredObject("whereby", key_for(meeting)), Source.sqs
    )
    assert received is not None
    answer = await client.get(
        f"/v1/recordings/{received.recording_id}/download", headers=alice.headers
    )
    assert answer.status_code == 404
    assert "is not in" in answer.json()["detail"]
