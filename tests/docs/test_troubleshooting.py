"""Every entry of docs/troubleshooting.md, caused for real: the test makes the fault happen
through the real component (the app over ASGI, the Whereby client against the sandbox or a
scripted server on loopback, S3 and SQS on moto, the settings loader, the CLI) and checks that
what Reflector says contains the message the entry quotes.

Each test is marked with `@entry("<id>")`; the set of marked ids must equal the set of entries
in the doc, so an entry without a test, or a test whose entry is gone, fails the suite.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs
from typer.testing import CliRunner

from reflector.app import create_app
from reflector.auth import service as auth
from reflector.cli import app as cli_app
from reflector.db.base import utcnow
from reflector.db.engine import create_engine, create_session_factory
from reflector.errors import Conflict
from reflector.meetings.models import Meeting
from reflector.meetings.service import mark_ended
from reflector.platforms.base import VideoPlatform
from reflector.platforms.whereby.platform import WherebyPlatform
from reflector.platforms.whereby.signature import HEADER
from reflector.recordings.intake import Intake
from reflector.recordings.models import RecordingStatus
from reflector.recordings.objects import Source, StoredObject
from reflector.recordings.processing import process_recording
from reflector.recordings.reconciler import Reconciler
from reflector.recordings.storage import (
    LocalStorage,
    S3Storage,
    derived_storage,
    recording_storage,
)
from reflector.retention.apply import apply_retention, summary
from reflector.room_webhooks.dispatcher import deliver_due
from reflector.room_webhooks.outbox import enqueue_meeting_ended
from reflector.sandbox.defaults import SANDBOX_API_KEY
from reflector.settings import ENV_FILE_VARIABLE, ConfigError, Settings, load_settings
from reflector.transcripts.models import TranscriptStatus
from tests.conftest import WEBHOOK_SECRET, Account, make_settings
from tests.docs.markdown import REPO, TROUBLESHOOTING, entries, message
from tests.factories import make_meeting
from tests.fakes.jobs import RecordingJobQueue
from tests.fakes.pipeline import scripted_backends
from tests.fakes.platform import FakePlatform
from tests.fakes.scripted_http import Reply, ScriptedHttpServer
from tests.hardening.conftest import PRODUCTION, PRODUCTION_SECRETS
from tests.processes import free_port
from tests.recordings.conftest import REGION, aws_client, isolate_from_machine_aws, unique_name
from tests.recordings.test_storage import iam_enforced
from tests.retention.conftest import add_recording, add_room, add_transcript
from tests.room_webhooks.receiver import Receiver
from tests.room_webhooks.receiver import Reply as Answer
from tests.sandbox.conftest import StartSandbox
from tests.webhooks.whereby_events import client_event, compact, envelope, signed_headers

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

TESTED: set[str] = set()

WAIT_SECONDS = 15.0
ROOM = {"name": "standup", "recording_type": "none"}
START = "2026-11-28T12:00:05Z"
UNKNOWN_ROOM = "/elsewhere-0b1fbe30-2346-4681-85a5-f309f11e509f"


def entry(entry_id: str) -> Callable[[F], F]:
    """Marks a test as the check of one troubleshooting entry."""

    def mark(test: F) -> F:
        if entry_id in TESTED:
            raise AssertionError(f"two tests check {entry_id!r}")
        TESTED.add(entry_id)
        return test

    return mark


def test_every_entry_has_a_test_and_every_test_an_entry() -> None:
    documented = set(entries())
    assert documented - TESTED == set(), "entries in docs/troubleshooting.md without a test"
    assert TESTED - documented == set(), "tests whose entry is gone from the doc"


def test_every_entry_says_symptom_cause_and_fix() -> None:
    for found in entries().values():
        for part in ("**Symptom.**", "**Cause.**", "**Fix.**"):
            assert part in found.text, f"entry {found.id} has no {part}"
        # The anchor readers link to (troubleshooting.md#<id>).
        assert f'<a id="{found.id}"></a>' in TROUBLESHOOTING.read_text(), found.id


# --- helpers -------------------------------------------------------------------------------


@asynccontextmanager
async def served(
    settings: Settings,
    engine: AsyncEngine | None = None,
    *,
    platforms: dict[str, VideoPlatform] | None = None,
    jobs: RecordingJobQueue | None = None,
    background: bool = False,
) -> AsyncIterator[httpx.AsyncClient]:
    """The app for these settings, started (lifespan included), and a client for it."""
    application = create_app(
        settings,
        engine=engine,
        platforms=platforms,
        jobs=jobs or RecordingJobQueue(),
        background=background,
    )
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def start_meeting(client: httpx.AsyncClient, account: Account) -> httpx.Response:
    created = await client.post("/v1/rooms", json=ROOM, headers=account.headers)
    assert created.status_code == 201, created.text
    return await client.post(f"/v1/rooms/{ROOM['name']}/meeting", headers=account.headers)


def fake_platforms(settings: Settings) -> dict[str, VideoPlatform]:
    return {"whereby": FakePlatform(WherebyPlatform(settings, httpx.AsyncClient()))}


def detail(response: httpx.Response) -> str:
    value: str = response.json()["detail"]
    return value


async def post_event(
    client: httpx.AsyncClient, event: dict[str, Any], **signing: Any
) -> httpx.Response:
    body = compact(event)
    return await client.post("/v1/whereby", content=body, headers=signed_headers(body, **signing))


def unknown_meeting_event() -> dict[str, Any]:
    return client_event("joined", "99999999", UNKNOWN_ROOM, "p1", 1)


async def until(check: Callable[[], Awaitable[T]], within: float = WAIT_SECONDS) -> T:
    """`check()`'s first truthy value, asked every 50 ms for up to `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


def unreachable_engine() -> AsyncEngine:
    """An engine whose database never answers: nothing listens on its port."""
    return create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/reflector")


def recording_key(room_name: str) -> str:
    return f"{room_name.lstrip('/')}-{START}.mp4"


async def make_admin(engine: AsyncEngine) -> dict[str, str]:
    async with create_session_factory(engine)() as session:
        user = await auth.create_user(session, "root@example.com", is_admin=True)
        issued = await auth.create_token(session, user, "test")
        await session.commit()
    return {"Authorization": f"Bearer {issued.secret}"}


def iam_user(endpoint: str, actions: list[str], resources: list[str]) -> dict[str, str]:
    """A moto IAM user allowed `actions` on `resources`; its access key."""
    iam = aws_client("iam", endpoint)
    user = unique_name("reflector")
    iam.create_user(UserName=user)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}],
    }
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
    key: dict[str, str] = iam.create_access_key(UserName=user)["AccessKey"]
    return key


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `reflector ARGS` in this process; (exit code, stderr)."""
    runner = CliRunner(env={"DATA_DIR": str(tmp_path / "cli-data"), **(env or {})})
    result = runner.invoke(cli_app, ["--env-file", str(tmp_path / "absent.env"), *args])
    return result.exit_code, result.stderr


# --- Whereby API ---------------------------------------------------------------------------


@entry("whereby-401")
async def test_whereby_401(
    engine: AsyncEngine, alice: Account, start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    sandbox = await start_sandbox(receiver=None)
    settings = make_settings(
        tmp_path, WHEREBY_API_KEY="a-revoked-key", WHEREBY_API_URL=sandbox.url + "/v1"
    )
    async with served(settings, engine) as client:
        response = await start_meeting(client, alice)
    assert response.status_code == 502
    assert response.json()["error"] == "whereby_unauthorized"
    assert message("whereby-401") in detail(response)


@entry("whereby-health-unauthorized")
async def test_whereby_health_unauthorized(
    engine: AsyncEngine, start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    sandbox = await start_sandbox(receiver=None)
    settings = make_settings(
        tmp_path, WHEREBY_API_KEY="a-revoked-key", WHEREBY_API_URL=sandbox.url + "/v1"
    )
    async with served(settings, engine) as client:
        response = await client.get("/v1/whereby/health")
    assert response.status_code == 200
    assert message("whereby-health-unauthorized") in response.text


@entry("whereby-403")
async def test_whereby_403(
    engine: AsyncEngine, alice: Account, scripted_http: ScriptedHttpServer, tmp_path: Path
) -> None:
    scripted_http.script("POST", "/v1/meetings", Reply(403, {"error": "Forbidden"}))
    settings = make_settings(
        tmp_path, WHEREBY_API_KEY="a-valid-key", WHEREBY_API_URL=scripted_http.url + "/v1"
    )
    async with served(settings, engine) as client:
        response = await start_meeting(client, alice)
    assert response.status_code == 502
    assert response.json()["error"] == "whereby_forbidden"
    assert detail(response).startswith("Whereby refused creating a meeting for this account (403)")
    assert message("whereby-403") in detail(response)


@entry("whereby-not-configured")
async def test_whereby_not_configured(engine: AsyncEngine, alice: Account, tmp_path: Path) -> None:
    async with served(make_settings(tmp_path), engine) as client:
        response = await start_meeting(client, alice)
    assert response.status_code == 503
    assert response.json()["error"] == "whereby_not_configured"
    assert message("whereby-not-configured") in detail(response)


@entry("whereby-unreachable")
async def test_whereby_unreachable(engine: AsyncEngine, alice: Account, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        WHEREBY_API_KEY="a-valid-key",
        WHEREBY_API_URL=f"http://127.0.0.1:{free_port()}/v1",
        WHEREBY_MAX_RETRIES=0,
    )
    async with served(settings, engine) as client:
        response = await start_meeting(client, alice)
    assert response.status_code == 502
    assert response.json()["error"] == "whereby_unavailable"
    assert message("whereby-unreachable") in detail(response)


@entry("whereby-rate-limited")
async def test_whereby_rate_limited(
    engine: AsyncEngine, alice: Account, start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    sandbox = await start_sandbox(receiver=None)
    switched = await sandbox.http.put("/_sandbox/rate-limit", json={"count": 1, "retryAfter": 1})
    assert switched.status_code == 200, switched.text
    settings = make_settings(
        tmp_path,
        WHEREBY_API_KEY=sandbox.config.api_key,
        WHEREBY_API_URL=sandbox.url + "/v1",
        WHEREBY_MAX_RETRIES=0,
    )
    async with served(settings, engine) as client:
        response = await start_meeting(client, alice)
    assert response.status_code == 502
    assert response.json()["error"] == "whereby_rate_limited"
    assert "Retry-After" in response.headers
    assert message("whereby-rate-limited") in detail(response)


# --- Webhooks from Whereby -----------------------------------------------------------------


@entry("webhook-missing-signature")
async def test_webhook_missing_signature(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/whereby", content=compact(unknown_meeting_event()))
    assert response.status_code == 400
    assert response.json()["error"] == "missing_signature"
    assert message("webhook-missing-signature") in detail(response)


@entry("webhook-malformed-signature")
async def test_webhook_malformed_signature(client: httpx.AsyncClient) -> None:
    body = compact(unknown_meeting_event())
    response = await client.post("/v1/whereby", content=body, headers={HEADER: "sha256=abc"})
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_signature"
    assert message("webhook-malformed-signature") in detail(response)


@entry("webhook-bad-signature")
async def test_webhook_bad_signature(client: httpx.AsyncClient) -> None:
    response = await post_event(client, unknown_meeting_event(), secret="another-webhook-secret")
    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"
    assert message("webhook-bad-signature") in detail(response)


@entry("webhook-clock-skew")
async def test_webhook_clock_skew(client: httpx.AsyncClient) -> None:
    an_hour_ago = int(time.time()) - 3600
    response = await post_event(client, unknown_meeting_event(), timestamp=an_hour_ago)
    assert response.status_code == 401
    assert response.json()["error"] == "signature_out_of_window"
    assert "(in the past)" in detail(response)
    assert message("webhook-clock-skew") in detail(response)


@entry("webhook-secret-not-configured")
async def test_webhook_secret_not_configured(engine: AsyncEngine, tmp_path: Path) -> None:
    async with served(make_settings(tmp_path), engine) as client:
        response = await post_event(client, unknown_meeting_event())
    assert response.status_code == 503
    assert response.json()["error"] == "webhook_secret_not_configured"
    assert message("webhook-secret-not-configured") in detail(response)


@entry("webhook-invalid-payload")
async def test_webhook_invalid_payload(client: httpx.AsyncClient) -> None:
    event = envelope("room.client.joined", {"meetingId": "1"})
    del event["createdAt"]
    response = await post_event(client, event)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_payload"
    assert message("webhook-invalid-payload") in detail(response)
    assert detail(response).endswith("(createdAt: Field required).")


@entry("webhook-failures-rate-limited")
async def test_webhook_failures_rate_limited(engine: AsyncEngine, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, WHEREBY_WEBHOOK_SECRET=WEBHOOK_SECRET, WEBHOOK_FAILED_REQUESTS_PER_MINUTE=1
    )
    async with served(settings, engine) as client:
        failed = await post_event(client, unknown_meeting_event(), secret="wrong")
        refused = await post_event(client, unknown_meeting_event())
    assert failed.status_code == 401
    # Once the failures are used up, a correctly signed request is refused too.
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"
    assert message("webhook-failures-rate-limited") in detail(refused)


@entry("webhook-events-rate-limited")
async def test_webhook_events_rate_limited(engine: AsyncEngine, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, WHEREBY_WEBHOOK_SECRET=WEBHOOK_SECRET, WEBHOOK_REQUESTS_PER_MINUTE=1
    )
    async with served(settings, engine) as client:
        first = await post_event(client, unknown_meeting_event())
        second = await post_event(client, unknown_meeting_event())
    assert first.status_code == 200
    assert second.status_code == 429
    assert message("webhook-events-rate-limited") in detail(second)


@entry("webhook-database-unavailable")
async def test_webhook_database_unavailable(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, WHEREBY_WEBHOOK_SECRET=WEBHOOK_SECRET)
    engine = unreachable_engine()
    try:
        async with served(settings, engine) as client:
            response = await post_event(client, unknown_meeting_event())
    finally:
        await engine.dispose()
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"
    assert message("webhook-database-unavailable") in detail(response)


# --- Participant counts stuck at 0 ---------------------------------------------------------


@entry("participants-no-webhooks")
async def test_participants_no_webhooks(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/whereby/health")
    assert response.status_code == 200
    assert response.json()["accepted_24h"] == 0
    assert message("participants-no-webhooks") in response.text


@entry("participants-unmatched")
async def test_participants_unmatched(client: httpx.AsyncClient) -> None:
    response = await post_event(client, unknown_meeting_event())
    assert response.status_code == 200
    assert message("participants-unmatched") in response.text
    health = (await client.get("/v1/whereby/health")).json()
    assert health["accepted_24h"] == 1


@entry("participants-wrong-secret")
async def test_participants_wrong_secret(client: httpx.AsyncClient) -> None:
    for _ in range(2):
        refused = await post_event(client, unknown_meeting_event(), secret="last-years-secret")
        assert refused.status_code == 401
    response = await client.get("/v1/whereby/health")
    assert response.json()["last_verified_event_at"] is None
    assert message("participants-wrong-secret") in response.text
    assert response.json()["rejected_24h_by_reason"] == {"bad_signature": 2}


# --- Recordings ----------------------------------------------------------------------------


@entry("recordings-not-announced")
async def test_recordings_not_announced(
    engine: AsyncEngine, alice: Account, aws_env: str, tmp_path: Path
) -> None:
    # A bucket and a queue, but no notification from the one to the other.
    bucket = unique_name("recordings")
    s3, sqs = aws_client("s3", aws_env), aws_client("sqs", aws_env)
    s3.create_bucket(Bucket=bucket)
    queue_url = sqs.create_queue(QueueName=bucket)["QueueUrl"]
    meeting = await make_meeting(engine, alice)
    s3.put_object(Bucket=bucket, Key=recording_key(meeting.platform_room_name), Body=b"mp4")
    settings = make_settings(
        tmp_path,
        WHEREBY_API_KEY="a-valid-key",
        RECORDING_STORAGE_AWS_BUCKET_NAME=bucket,
        AWS_PROCESS_RECORDING_QUEUE_URL=queue_url,
        AWS_ENDPOINT_URL=aws_env,
        SQS_POLLING_TIMEOUT_SECONDS=1,
    )
    async with served(
        settings, engine, platforms=fake_platforms(settings), background=True
    ) as client:

        async def listed() -> httpx.Response | None:
            response = await client.get("/v1/recordings", headers=alice.headers)
            return response if response.json()["items"] else None

        response = await until(listed)
    assert response is not None, "the reconciler did not find the recording"
    assert message("recordings-not-announced") in response.text
    [recording] = response.json()["items"]
    assert recording["source"] == "reconciler"


@entry("sqs-unreachable")
async def test_sqs_unreachable(engine: AsyncEngine, aws_env: str, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        AWS_PROCESS_RECORDING_QUEUE_URL=f"{aws_env}/123456789012/{unique_name('no-such-queue')}",
        AWS_ENDPOINT_URL=aws_env,
        SQS_POLLING_TIMEOUT_SECONDS=1,
    )
    with capture_logs() as logs:
        async with served(settings, engine, platforms=fake_platforms(settings), background=True):

            async def failure() -> dict[str, Any] | None:
                return next(
                    (e for e in list(logs) if e.get("lease") == "sqs-consumer" and "exc_info" in e),
                    None,
                )

            logged = await until(failure)
    assert logged is not None, "no SQS failure was logged"
    assert logged["event"] == message("sqs-unreachable")
    assert type(logged["exc_info"]).__name__ == "QueueDoesNotExist"


@entry("reconciler-listbucket")
async def test_reconciler_listbucket(engine: AsyncEngine, moto_server: str) -> None:
    bucket = unique_name("recordings")
    aws_client("s3", moto_server).create_bucket(Bucket=bucket)
    key = iam_user(moto_server, ["s3:GetObject"], [f"arn:aws:s3:::{bucket}/*"])
    storage = S3Storage(
        bucket,
        access_key_id=key["AccessKeyId"],
        secret_access_key=key["SecretAccessKey"],
        endpoint_url=moto_server,
        region_name=REGION,
    )
    reconciler = Reconciler(engine, storage, bucket, Intake(engine, RecordingJobQueue()))
    with iam_enforced(moto_server), capture_logs() as logs:
        assert await reconciler.run_once() == 0
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert warning["event"] == message("reconciler-listbucket")
    assert f"lacks s3:ListBucket on arn:aws:s3:::{bucket}" in warning["error"]


@entry("recording-unmatched")
async def test_recording_unmatched(engine: AsyncEngine, client: httpx.AsyncClient) -> None:
    intake = Intake(engine, RecordingJobQueue())
    received = await intake.receive(
        StoredObject("recordings", recording_key(UNKNOWN_ROOM)), Source.sqs
    )
    assert received is not None
    admin = await make_admin(engine)
    response = await client.get("/v1/recordings?status=unmatched", headers=admin)
    assert message("recording-unmatched") in response.text
    [recording] = response.json()["items"]
    assert recording["meeting_id"] is None

    # What the entry says of processing it again: matched again first, and refused.
    with pytest.raises(Conflict) as refused:
        await intake.retry(received.recording_id)
    assert refused.value.detail.startswith(
        f"Recording {received.recording_id} still names no meeting this service knows "
        f"(its key is {recording_key(UNKNOWN_ROOM)!r}): "
    )
    assert refused.value.detail.endswith(" It stays unmatched.")
    retried = await client.post(f"/v1/recordings/{received.recording_id}/retry", headers=admin)
    assert retried.status_code == 409
    assert "still names no meeting this service knows" in retried.json()["detail"]


async def failed_recording(
    engine: AsyncEngine,
    meeting: Meeting,
    tmp_path: Path,
    recordings: LocalStorage | S3Storage,
    bucket: str = "recordings",
) -> str:
    """The recording of `meeting` in `bucket`, announced and processed from `recordings`, which
    fails: its id."""
    received = await Intake(engine, RecordingJobQueue()).receive(
        StoredObject(bucket, recording_key(meeting.platform_room_name)), Source.sqs
    )
    assert received is not None
    status = await process_recording(
        received.recording_id,
        engine=engine,
        recordings=recordings,
        derived=LocalStorage(tmp_path / "derived"),
        backends=scripted_backends()[0],
        workdir=tmp_path,
    )
    assert status == "failed"
    return received.recording_id


async def recording_error(client: httpx.AsyncClient, account: Account, recording_id: str) -> str:
    response = await client.get(f"/v1/recordings/{recording_id}", headers=account.headers)
    assert response.json()["status"] == "failed"
    error: str = response.json()["error"]
    return error


@entry("recording-object-missing")
async def test_recording_object_missing(
    engine: AsyncEngine, client: httpx.AsyncClient, alice: Account, tmp_path: Path
) -> None:
    meeting = await make_meeting(engine, alice)
    recording_id = await failed_recording(
        engine, meeting, tmp_path, LocalStorage(tmp_path / "bucket")
    )
    key = recording_key(meeting.platform_room_name)
    error = await recording_error(client, alice, recording_id)
    assert message("recording-object-missing") in error
    assert error.startswith(f"The object {key} is no longer in")


@entry("recording-read-denied")
async def test_recording_read_denied(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    alice: Account,
    moto_server: str,
    tmp_path: Path,
) -> None:
    # Whereby's writer key may only put objects; read with it, the recording is refused.
    bucket = unique_name("recordings")
    meeting = await make_meeting(engine, alice)
    s3 = aws_client("s3", moto_server)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=recording_key(meeting.platform_room_name), Body=b"mp4")
    writer = iam_user(moto_server, ["s3:PutObject"], [f"arn:aws:s3:::{bucket}/*"])
    storage = S3Storage(
        bucket,
        access_key_id=writer["AccessKeyId"],
        secret_access_key=writer["SecretAccessKey"],
        endpoint_url=moto_server,
        region_name=REGION,
    )
    with iam_enforced(moto_server):
        recording_id = await failed_recording(engine, meeting, tmp_path, storage, bucket)
    error = await recording_error(client, alice, recording_id)
    assert message("recording-read-denied") in error
    assert error.endswith(f"run `reflector recordings retry {recording_id}` once it is fixed.")


@entry("recording-not-media")
async def test_recording_not_media(
    engine: AsyncEngine, client: httpx.AsyncClient, alice: Account, tmp_path: Path
) -> None:
    meeting = await make_meeting(engine, alice)
    recordings = LocalStorage(tmp_path / "bucket")
    await recordings.write(
        recording_key(meeting.platform_room_name), b"<html>not a recording</html>", "video/mp4"
    )
    recording_id = await failed_recording(engine, meeting, tmp_path, recordings, "bucket")
    assert message("recording-not-media") in await recording_error(client, alice, recording_id)


# --- Start-up and configuration ------------------------------------------------------------


def config_error(**values: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, **values)
    return str(caught.value)


@entry("config-invalid-value")
def test_config_invalid_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    expected = message("config-invalid-value")
    assert expected in config_error(DATABASE_URL="mysql://reflector@db/reflector")
    # Any command says the same, on stderr, and stops with status 2.
    code, err = cli(tmp_path, "users", "list", env={"DATABASE_URL": "mysql://reflector@db/x"})
    assert code == 2
    assert expected in err


@entry("config-llm-model")
def test_config_llm_model() -> None:
    assert message("config-llm-model") in config_error(LLM_URL="http://127.0.0.1:8080/v1")


@entry("config-transcribe-api-url")
def test_config_transcribe_api_url() -> None:
    assert message("config-transcribe-api-url") in config_error(TRANSCRIBE_BACKEND="openai")


@entry("config-whereby-key-secret")
async def test_config_whereby_key_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_from_machine_aws(monkeypatch, tmp_path)
    settings = make_settings(
        tmp_path,
        WHEREBY_API_KEY="a-valid-key",
        RECORDING_STORAGE_AWS_BUCKET_NAME="recordings",
        AWS_WHEREBY_ACCESS_KEY_ID="AKIAWHEREBYWRITER",
    )
    # The server builds its recording storage as it starts its background work.
    with pytest.raises(ConfigError) as caught:
        async with served(settings, platforms=fake_platforms(settings), background=True):
            pass
    assert message("config-whereby-key-secret") in str(caught.value)


@entry("schema-behind")
def test_schema_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    code, err = cli(tmp_path, "users", "list")
    assert code == 1
    assert err.startswith("error: the database schema is at nothing but this version needs ")
    assert message("schema-behind") in err


@entry("database-unreachable")
async def test_database_unreachable(tmp_path: Path) -> None:
    engine = unreachable_engine()
    try:
        async with served(make_settings(tmp_path), engine) as client:
            response = await client.get("/health")
    finally:
        await engine.dispose()
    assert response.status_code == 503
    assert message("database-unreachable") in detail(response)


@entry("unknown-queue")
def test_unknown_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `reflector worker` records its env file for the tasks; keep that out of other tests.
    monkeypatch.setenv(ENV_FILE_VARIABLE, "")
    code, err = cli(tmp_path, "worker", "--queues", "gpu")
    assert code == 2
    assert err.startswith("error: unknown queue gpu;")
    assert message("unknown-queue") in err


# --- Production and browser access ---------------------------------------------------------


def production(monkeypatch: pytest.MonkeyPatch, **changes: str) -> dict[str, str]:
    """Settings that pass the production checks, with `changes` ("" unsets); nothing of this
    machine's environment mixes in."""
    for name in (*PRODUCTION, "BASE_URL", "WHEREBY_SANDBOX", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    values = {**PRODUCTION, **changes}
    return {name: value for name, value in values.items() if value != ""}


def assert_no_secret(text: str) -> None:
    for secret in PRODUCTION_SECRETS.values():
        assert secret not in text


@entry("production-secret-missing")
def test_production_secret_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = production(monkeypatch, WHEREBY_API_KEY="")
    expected = message("production-secret-missing")
    said = config_error(**values)
    assert said.startswith("Configuration error: settings: ENVIRONMENT=production, but ")
    assert expected in said
    assert_no_secret(said)
    # Every command says the same, on stderr, and stops with status 2.
    code, err = cli(tmp_path, "users", "list", env={**values, "WHEREBY_API_KEY": ""})
    assert code == 2
    assert expected in err
    assert_no_secret(err)
    # The doc's table: each secret's phrase.
    text = entries()["production-secret-missing"].text
    for name in PRODUCTION_SECRETS:
        said = config_error(**production(monkeypatch, **{name: ""}))
        origin = said.split(f"{name} is not set (set it to ", 1)[1].split(")", 1)[0]
        assert f"| `{name}` | {origin} |" in text


@entry("production-placeholder-secret")
def test_production_placeholder_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = message("production-placeholder-secret")
    # The deployment example copied as it is ...
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=REPO / "deploy" / "reflector.env.example")
    assert expected in str(caught.value)
    # ... the sandbox's key, and the entry's example.
    said = config_error(**production(monkeypatch, WHEREBY_API_KEY=SANDBOX_API_KEY))
    assert f"WHEREBY_API_KEY {expected}" in said
    assert SANDBOX_API_KEY not in said
    said = config_error(**production(monkeypatch, WHEREBY_WEBHOOK_SECRET="<your-webhook-secret>"))
    assert (
        "WHEREBY_WEBHOOK_SECRET is a placeholder value (set it to the secret Whereby shows when "
        "you add the webhook)" in said
    )
    for value in ("AKIAIOSFODNN7EXAMPLE", "xxx", "0000-0000", "CHANGE_ME", "dummy"):
        said = config_error(**production(monkeypatch, AWS_WHEREBY_ACCESS_KEY_ID=value))
        assert expected in said, value


@entry("production-webhook-secret-short")
def test_production_webhook_secret_short(monkeypatch: pytest.MonkeyPatch) -> None:
    said = config_error(**production(monkeypatch, WHEREBY_WEBHOOK_SECRET="k5jH8dF2gB6cN9m"))
    assert message("production-webhook-secret-short") in said
    assert "k5jH8dF2gB6cN9m" not in said


@entry("production-http-base-url")
def test_production_http_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = message("production-http-base-url")
    # Unset, BASE_URL is the development default.
    said = config_error(**production(monkeypatch, BASE_URL=""))
    assert f"BASE_URL is http://127.0.0.1:1250/ {expected}" in said
    said = config_error(**production(monkeypatch, BASE_URL="http://reflector.example.com"))
    assert f"BASE_URL is http://reflector.example.com/ {expected}" in said


@entry("production-sandbox")
def test_production_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    said = config_error(**production(monkeypatch, WHEREBY_SANDBOX="true"))
    assert message("production-sandbox") in said


@entry("cors-origins-invalid")
def test_cors_origins_invalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORS_ALLOWED_ORIGINS", raising=False)
    expected = message("cors-origins-invalid")
    for value in ("https://app.example.com/", "app.example.com", "*", "https://a.example.com/x"):
        said = config_error(CORS_ALLOWED_ORIGINS=f"https://ok.example.com, {value}")
        assert said.startswith(f"Configuration error: CORS_ALLOWED_ORIGINS: {value!r} {expected}")
    said = config_error(CORS_ALLOWED_ORIGINS=" , ")
    assert "names no origin; unset it to allow none" in said
    code, err = cli(
        tmp_path, "users", "list", env={"CORS_ALLOWED_ORIGINS": "https://app.example.com/"}
    )
    assert code == 2
    assert expected in err
    # What the fix says is accepted, whatever the case and spaces.
    settings = load_settings(
        _env_file=None, CORS_ALLOWED_ORIGINS=" HTTPS://App.Example.com , http://localhost:3000"
    )
    assert settings.CORS_ALLOWED_ORIGINS == "https://app.example.com,http://localhost:3000"


@entry("cors-refused")
async def test_cors_refused(engine: AsyncEngine, tmp_path: Path) -> None:
    allowed = "https://app.example.com"
    preflight = {
        "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "authorization",
    }

    def cors(response: httpx.Response) -> dict[str, str]:
        return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}

    settings = make_settings(tmp_path, CORS_ALLOWED_ORIGINS=allowed)
    async with served(settings, engine) as client:
        ok = await client.options("/v1/rooms", headers={"Origin": allowed, **preflight})
        other = await client.options(
            "/v1/rooms", headers={"Origin": "http://app.example.com", **preflight}
        )
        method = await client.options(
            "/v1/rooms",
            headers={"Origin": allowed, "Access-Control-Request-Method": "PUT"},
        )
        simple = await client.get("/health", headers={"Origin": "https://elsewhere.example"})
    assert ok.status_code == 200
    assert cors(ok)["access-control-allow-origin"] == allowed
    assert "access-control-allow-credentials" not in cors(ok)
    assert other.status_code == 400
    assert other.json()["error"] == "cors_refused"
    assert cors(other) == {}
    assert message("cors-refused") in detail(other)
    assert detail(other).startswith("This cross-origin request is not allowed (origin); ")
    assert detail(method).startswith("This cross-origin request is not allowed (method); ")
    assert simple.status_code == 200
    assert cors(simple) == {}
    # Unset: no origin may, and the preflight is 405.
    async with served(make_settings(tmp_path), engine) as client:
        unset = await client.options("/v1/rooms", headers={"Origin": allowed, **preflight})
    assert unset.status_code == 405
    assert cors(unset) == {}


# --- Outgoing webhooks -----------------------------------------------------------------------


async def room_event(
    engine: AsyncEngine, client: httpx.AsyncClient, account: Account, url: str
) -> tuple[str, datetime]:
    """The `standup` room pointed at `url` through the API, then its meeting ended, which
    enqueues `meeting.ended` as the API's end route does: (the delivery's id, when)."""
    meeting = await make_meeting(engine, account)
    patched = await client.patch(
        "/v1/rooms/standup", json={"webhook_url": url}, headers=account.headers
    )
    assert patched.status_code == 200, patched.text
    now = utcnow()
    async with create_session_factory(engine)() as session:
        row = await session.get(Meeting, meeting.id)
        assert row is not None
        mark_ended(row, "ended_by_owner", now)
        delivery_id = await enqueue_meeting_ended(session, row, now)
        await session.commit()
    assert delivery_id is not None
    return delivery_id, now


async def delivery_log(
    client: httpx.AsyncClient, account: Account, delivery_id: str
) -> tuple[dict[str, Any], str]:
    """The delivery as GET .../webhook/deliveries shows it, and that answer's text."""
    response = await client.get("/v1/rooms/standup/webhook/deliveries", headers=account.headers)
    assert response.status_code == 200, response.text
    [found] = [d for d in response.json()["items"] if d["id"] == delivery_id]
    return found, response.text


async def dispatch(engine: AsyncEngine, settings: Settings, now: datetime) -> int:
    async with httpx.AsyncClient() as http:
        return await deliver_due(engine, http, settings, now)


@entry("room-webhook-refused")
async def test_room_webhook_refused(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    alice: Account,
    receiver: Receiver,
    settings: Settings,
) -> None:
    delivery_id, now = await room_event(engine, client, alice, receiver.url)
    receiver.script(401)
    with capture_logs() as logs:
        assert await dispatch(engine, settings, now) == 1
    assert await dispatch(engine, settings, now + timedelta(days=1)) == 0
    delivery, _ = await delivery_log(client, alice, delivery_id)
    assert (delivery["status"], delivery["last_status_code"]) == ("failed", 401)
    assert delivery["last_error"].startswith("The receiver answered 401, which is not retried")
    assert message("room-webhook-refused") in delivery["last_error"]
    assert [a["outcome"] for a in delivery["attempts"]] == ["failed"]
    [logged] = [e for e in logs if e["event"] == "webhook attempt"]
    assert logged["log_level"] == "warning"
    assert message("room-webhook-refused") in logged["error"]
    assert len(receiver.requests) == 1


@entry("room-webhook-retrying")
async def test_room_webhook_retrying(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    alice: Account,
    receiver: Receiver,
    settings: Settings,
) -> None:
    delivery_id, now = await room_event(engine, client, alice, receiver.url)
    receiver.script(503, 429)
    assert await dispatch(engine, settings, now) == 1
    delivery, text = await delivery_log(client, alice, delivery_id)
    assert message("room-webhook-retrying") in text
    assert (delivery["status"], delivery["last_error"]) == (
        "pending",
        "The receiver answered 503.",
    )
    assert datetime.fromisoformat(delivery["next_attempt_at"]) == now + timedelta(seconds=30)
    # The next at 30 s, then 60 s after that; then the receiver is well again.
    assert await dispatch(engine, settings, now + timedelta(seconds=30)) == 1
    delivery, _ = await delivery_log(client, alice, delivery_id)
    assert delivery["last_error"] == "The receiver answered 429."
    assert datetime.fromisoformat(delivery["next_attempt_at"]) == now + timedelta(seconds=90)
    assert await dispatch(engine, settings, now + timedelta(seconds=90)) == 1
    delivery, _ = await delivery_log(client, alice, delivery_id)
    assert delivery["status"] == "succeeded"
    assert [a["outcome"] for a in delivery["attempts"]] == ["retrying", "retrying", "succeeded"]


@entry("room-webhook-redirect")
async def test_room_webhook_redirect(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    alice: Account,
    receiver: Receiver,
    settings: Settings,
) -> None:
    delivery_id, now = await room_event(engine, client, alice, receiver.url)
    receiver.script(Answer(301, {"Location": receiver.url + "/"}))
    assert await dispatch(engine, settings, now) == 1
    delivery, _ = await delivery_log(client, alice, delivery_id)
    assert (delivery["status"], delivery["last_status_code"]) == ("failed", 301)
    assert delivery["last_error"].startswith(
        f"The receiver answered 301, a redirect to {receiver.url}/; "
    )
    assert message("room-webhook-redirect") in delivery["last_error"]
    assert len(receiver.requests) == 1


@entry("room-webhook-timeout")
async def test_room_webhook_timeout(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    alice: Account,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    delivery_id, now = await room_event(engine, client, alice, receiver.url)
    receiver.script(Answer(200, delay=3))
    quick = make_settings(tmp_path, ROOM_WEBHOOK_TIMEOUT_SECONDS=0.2)
    assert await dispatch(engine, quick, now) == 1
    delivery, _ = await delivery_log(client, alice, delivery_id)
    assert (delivery["status"], delivery["last_status_code"]) == ("pending", None)
    assert delivery["last_error"] == (
        "No answer from 127.0.0.1 within 0.2 s (ROOM_WEBHOOK_TIMEOUT_SECONDS)."
    )
    assert delivery["last_error"].startswith(message("room-webhook-timeout"))
    assert [a["outcome"] for a in delivery["attempts"]] == ["retrying"]


@entry("room-webhook-unreachable")
async def test_room_webhook_unreachable(
    engine: AsyncEngine, client: httpx.AsyncClient, alice: Account, settings: Settings
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/hooks/reflector"
    delivery_id, now = await room_event(engine, client, alice, nobody)
    assert await dispatch(engine, settings, now) == 1
    delivery, _ = await delivery_log(client, alice, delivery_id)
    assert (delivery["status"], delivery["last_status_code"]) == ("pending", None)
    assert delivery["last_error"].startswith(f"{message('room-webhook-unreachable')} 127.0.0.1")
    assert [a["outcome"] for a in delivery["attempts"]] == ["retrying"]


@entry("room-webhook-gave-up")
async def test_room_webhook_gave_up(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    alice: Account,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    delivery_id, start = await room_event(engine, client, alice, receiver.url)
    receiver.always = Answer(500)
    short = make_settings(tmp_path, ROOM_WEBHOOK_RETRY_HOURS=1)
    now = start
    for _ in range(20):
        assert await dispatch(engine, short, now) == 1
        delivery, _ = await delivery_log(client, alice, delivery_id)
        if delivery["next_attempt_at"] is None:
            break
        now = datetime.fromisoformat(delivery["next_attempt_at"])
    assert delivery["status"] == "failed"
    assert delivery["last_error"] == (
        "The receiver answered 500; no success within ROOM_WEBHOOK_RETRY_HOURS (1 h) of the "
        "event, so it is not retried any more."
    )
    assert message("room-webhook-gave-up") in delivery["last_error"]
    outcomes = [a["outcome"] for a in delivery["attempts"]]
    assert outcomes[-1] == "failed"
    assert set(outcomes[:-1]) == {"retrying"}


@entry("room-webhook-url-removed")
async def test_room_webhook_url_removed(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    alice: Account,
    receiver: Receiver,
    settings: Settings,
) -> None:
    delivery_id, now = await room_event(engine, client, alice, receiver.url)
    removed = await client.patch(
        "/v1/rooms/standup", json={"webhook_url": None}, headers=alice.headers
    )
    assert removed.status_code == 200
    await dispatch(engine, settings, now)
    delivery, _ = await delivery_log(client, alice, delivery_id)
    assert (delivery["status"], delivery["attempts"]) == ("failed", [])
    assert delivery["last_error"] == message("room-webhook-url-removed")
    assert receiver.requests == []


@entry("room-webhook-no-url")
async def test_room_webhook_no_url(client: httpx.AsyncClient, alice: Account) -> None:
    created = await client.post("/v1/rooms", json={"name": "plain"}, headers=alice.headers)
    assert created.status_code == 201
    response = await client.post("/v1/rooms/plain/webhook/test", headers=alice.headers)
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert message("room-webhook-no-url") in detail(response)
    assert detail(response).endswith(
        'set one first with PATCH /v1/rooms/plain {"webhook_url": "https://..."}.'
    )


@entry("room-webhook-https-required")
async def test_room_webhook_https_required(
    engine: AsyncEngine, alice: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, **production(monkeypatch))
    body = {"name": "standup", "webhook_url": "http://hooks.example.com/reflector"}
    async with served(settings, engine) as client:
        refused = await client.post("/v1/rooms", json=body, headers=alice.headers)
        secure = await client.post(
            "/v1/rooms",
            json={**body, "webhook_url": "https://hooks.example.com/reflector"},
            headers=alice.headers,
        )
    assert refused.status_code == 422
    assert refused.json()["error"] == "validation_error"
    assert message("room-webhook-https-required") in detail(refused)
    assert secure.status_code == 201, secure.text


# --- Retention -------------------------------------------------------------------------------


@entry("retention-audio-gone")
async def test_retention_audio_gone(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    alice: Account,
    settings: Settings,
) -> None:
    derived = derived_storage(settings)
    room = await add_room(engine, alice.user_id, "standup", retention_audio_days=0)
    transcript = await add_transcript(
        engine, derived, owner_id=alice.user_id, room_id=room, ended_at=utcnow()
    )
    done = await apply_retention(engine, recording_storage(settings), derived, settings, utcnow())
    assert [(d.kind, d.subject_id) for d in done] == [("audio", transcript.id)]
    for what in ("audio", "waveform"):
        gone = await client.get(f"/v1/transcripts/{transcript.id}/{what}", headers=alice.headers)
        assert gone.status_code == 410, gone.text
        assert gone.json()["error"] == "gone"
        assert detail(gone).startswith(f"The audio of transcript '{transcript.id}' was deleted on ")
        assert "by the retention policy (RETENTION_AUDIO_DAYS=0 (room standup): ended " in (
            detail(gone)
        )
        assert message("retention-audio-gone") in detail(gone)
    kept = await client.get(f"/v1/transcripts/{transcript.id}", headers=alice.headers)
    assert kept.status_code == 200


@entry("retention-retry-refused")
async def test_retention_retry_refused(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    alice: Account,
    settings: Settings,
) -> None:
    # A failed recording whose transcript (in error) its owner deletes, in a room that keeps
    # raw recordings 30 days: the raw file goes with the transcript.
    room = await add_room(engine, alice.user_id, "standup", retention_recording_days=30)
    recording_id = await add_recording(
        engine,
        recording_storage(settings),
        key="standup-2026-11-28T12:00:05Z.mp4",
        room_id=room,
        processed_at=utcnow(),
        status=RecordingStatus.failed,
    )
    transcript = await add_transcript(
        engine,
        derived_storage(settings),
        owner_id=alice.user_id,
        room_id=room,
        ended_at=utcnow(),
        recording_id=recording_id,
        status=TranscriptStatus.error,
    )
    deleted = await client.delete(f"/v1/transcripts/{transcript.id}", headers=alice.headers)
    assert deleted.status_code == 204, deleted.text
    retried = await client.post(f"/v1/recordings/{recording_id}/retry", headers=alice.headers)
    assert retried.status_code == 409
    assert retried.json()["error"] == "conflict"
    assert message("retention-retry-refused") in detail(retried)
    assert f"its transcript {transcript.id} was deleted through the API" in detail(retried)
    assert detail(retried).endswith("so there is nothing left to process.")


@entry("retention-download-gone")
async def test_retention_download_gone(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    alice: Account,
    settings: Settings,
) -> None:
    recordings = recording_storage(settings)
    room = await add_room(engine, alice.user_id, "standup", retention_recording_days=0)
    recording_id = await add_recording(
        engine,
        recordings,
        key="standup-2026-11-28T12:00:05Z.mp4",
        room_id=room,
        processed_at=utcnow(),
    )
    path = f"/v1/recordings/{recording_id}/download"
    assert (await client.get(path, headers=alice.headers)).status_code == 200
    done = await apply_retention(engine, recordings, derived_storage(settings), settings, utcnow())
    assert [(d.kind, d.subject_id) for d in done] == [("recording", recording_id)]
    gone = await client.get(path, headers=alice.headers)
    assert gone.status_code == 410
    assert gone.json()["error"] == "gone"
    assert detail(gone).startswith(
        f"The file of recording {recording_id} was deleted by retention on "
    )
    # The reason is the audit log's.
    assert "RETENTION_RECORDING_DAYS=0 (room standup)" in detail(gone)
    assert message("retention-download-gone") in detail(gone)


def no_delete_user(endpoint: str, bucket: str) -> dict[str, str]:
    """A key that may read, write and list the bucket, but not delete from it."""
    return iam_user(
        endpoint,
        ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
        [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
    )


@entry("retention-deletion-failed")
async def test_retention_deletion_failed(
    engine: AsyncEngine, alice: Account, moto_server: str, tmp_path: Path
) -> None:
    bucket = unique_name("recordings")
    aws_client("s3", moto_server).create_bucket(Bucket=bucket)
    key = no_delete_user(moto_server, bucket)
    storage = S3Storage(
        bucket,
        access_key_id=key["AccessKeyId"],
        secret_access_key=key["SecretAccessKey"],
        endpoint_url=moto_server,
        region_name=REGION,
    )
    room = await add_room(engine, alice.user_id, "standup")
    recording_id = await add_recording(
        engine,
        storage,
        key="standup-2026-11-28T12:00:05Z.mp4",
        room_id=room,
        processed_at=utcnow(),
        bucket=bucket,
    )
    settings = make_settings(tmp_path, RETENTION_RECORDING_DAYS=0)
    derived = LocalStorage(tmp_path / "derived")
    with iam_enforced(moto_server), capture_logs() as logs:
        done = await apply_retention(engine, storage, derived, settings, utcnow())
    assert (list(done), done.failed) == ([], 1)
    [warning] = [e for e in logs if e["event"] == message("retention-deletion-failed")]
    assert warning["log_level"] == "warning"
    assert (warning["kind"], warning["subject_id"]) == ("recording", recording_id)
    assert warning["target"] == f"s3://{bucket}/standup-2026-11-28T12:00:05Z.mp4"
    # botocore names the error's class after the code (AccessDenied) or ClientError.
    assert (
        "An error occurred (AccessDenied) when calling the DeleteObject operation"
        in (warning["error"])
    )
    assert warning["hint"] == (
        "the item stays due and is tried again at the next pass; check that Reflector's "
        "credentials may delete objects there (s3:DeleteObject)"
    )
    assert summary(done, dry_run=False).endswith(
        "1 could not be made (see the log above); they are tried again at the next pass."
    )
    # The object is still there, and the recording still due.
    assert await storage.size("standup-2026-11-28T12:00:05Z.mp4") is not None
    again = await apply_retention(engine, storage, derived, settings, utcnow(), dry_run=True)
    assert [d.subject_id for d in again] == [recording_id]


@entry("retention-transcript-delete-refused")
async def test_retention_transcript_delete_refused(
    engine: AsyncEngine,
    alice: Account,
    moto_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Reflector has no AWS credentials of its own, so it reads the bucket with Whereby's key;
    # that key may not delete.
    isolate_from_machine_aws(monkeypatch, tmp_path)
    bucket = unique_name("recordings")
    aws_client("s3", moto_server).create_bucket(Bucket=bucket)
    key = no_delete_user(moto_server, bucket)
    settings = make_settings(
        tmp_path,
        WHEREBY_API_KEY="a-valid-key",
        RECORDING_STORAGE_AWS_BUCKET_NAME=bucket,
        AWS_ENDPOINT_URL=moto_server,
        AWS_DEFAULT_REGION=REGION,
        AWS_WHEREBY_ACCESS_KEY_ID=key["AccessKeyId"],
        AWS_WHEREBY_ACCESS_KEY_SECRET=key["SecretAccessKey"],
    )
    recordings = recording_storage(settings)
    assert isinstance(recordings, S3Storage)
    room = await add_room(engine, alice.user_id, "standup", retention_recording_days=30)
    object_key = "standup-2026-11-28T12:00:05Z.mp4"
    recording_id = await add_recording(
        engine, recordings, key=object_key, room_id=room, processed_at=utcnow(), bucket=bucket
    )
    transcript = await add_transcript(
        engine,
        derived_storage(settings),
        owner_id=alice.user_id,
        room_id=room,
        ended_at=utcnow(),
        recording_id=recording_id,
    )
    async with served(settings, engine, platforms=fake_platforms(settings)) as client:
        with iam_enforced(moto_server), capture_logs() as logs:
            refused = await client.delete(f"/v1/transcripts/{transcript.id}", headers=alice.headers)
        kept = await client.get(f"/v1/transcripts/{transcript.id}", headers=alice.headers)
    assert refused.status_code == 503
    assert refused.json()["error"] == "service_unavailable"
    assert detail(refused).startswith(
        f"Transcript '{transcript.id}' was not deleted: its raw recording "
        f"s3://{bucket}/{object_key} could not be deleted ("
    )
    assert "), which RETENTION_RECORDING_DAYS=30 (room standup) asks for." in detail(refused)
    assert message("retention-transcript-delete-refused") in detail(refused)
    assert any(e["event"] == "raw recording could not be deleted" for e in logs)
    assert kept.status_code == 200
    assert await recordings.size(object_key) is not None
