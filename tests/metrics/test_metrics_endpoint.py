"""GET /metrics: every family filled through the real code paths (signed webhooks, the SQS
consumer on moto, the upload job with scripted models), read back in Prometheus's format."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector import __version__
from reflector.db.base import utcnow
from reflector.db.engine import create_session_factory
from reflector.meetings.models import Meeting
from reflector.pipeline.runner import Request
from reflector.recordings.objects import Source, StoredObject
from reflector.recordings.sqs import PollResult, SqsConsumer
from reflector.room_webhooks.models import WebhookAttempt, WebhookDelivery
from reflector.settings import Settings
from reflector.transcripts.processing import process_upload, run_transcript
from tests.conftest import Account
from tests.factories import make_meeting
from tests.fakes.pipeline import scripted_backends
from tests.recordings.conftest import NotifiedBucket, aws_client
from tests.transcripts.test_api import derived_of
from tests.webhooks.whereby_events import client_event, compact, signed_headers

TALK = Path(__file__).resolve().parent.parent / "fixtures" / "media" / "talk.m4a"
RECORDING_KEY = "standup-0b1fbe30-2346-4681-85a5-f309f11e509f-2023-10-31T13:09:35Z.mp4"
DEADLINE_SECONDS = 15.0

FAMILIES = [
    "reflector_build_info",
    "reflector_webhook_events_total",
    "reflector_webhook_rejections_total",
    "reflector_webhook_signature_failures_total",
    "reflector_active_meetings",
    "reflector_meeting_participants",
    "reflector_recordings",
    "reflector_sqs_messages_total",
    "reflector_sqs_message_age_seconds",
    "reflector_pipeline_step_duration_seconds",
    "reflector_stored_bytes",
    "reflector_outgoing_webhook_deliveries_total",
]
STEPS = ["audio", "transcribe", "diarize", "assemble", "speakers", "topics", "summary", "exports"]


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def family_of(sample_name: str) -> str:
    """The family a sample belongs to, as listed in FAMILIES."""
    for suffix in ("_bucket", "_sum", "_count"):
        if sample_name.endswith(suffix) and sample_name.removesuffix(suffix) in FAMILIES:
            return sample_name.removesuffix(suffix)
    return sample_name


def value(found: list[Sample], name: str, **labels: str) -> float:
    [match] = [s for s in found if s.name == name and s.labels == labels]
    return match.value


async def scrape(client: httpx.AsyncClient) -> list[Sample]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return samples(response.text)


async def test_an_empty_database_scrapes_with_zeros(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")  # no token
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    found = samples(response.text)
    assert value(found, "reflector_build_info", version=__version__) == 1
    assert all(s.value == 0 for s in found if s.name != "reflector_build_info")
    assert value(found, "reflector_active_meetings", platform="whereby") == 0
    assert value(found, "reflector_recordings", status="failed") == 0


async def test_openmetrics_when_the_scraper_asks_for_it(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    names = {family.name for family in openmetrics_families(response.text)}
    assert {"reflector_build_info", "reflector_webhook_events"} <= names


async def post_webhook(client: httpx.AsyncClient, event: dict[str, Any], **sign: Any) -> str:
    body = compact(event)
    response = await client.post("/v1/whereby", content=body, headers=signed_headers(body, **sign))
    return str(response.json().get("status", response.status_code))


async def add_outgoing_attempts(engine: AsyncEngine, room_id: str) -> None:
    """Outgoing deliveries are another feature's rows: written here directly."""
    async with create_session_factory(engine)() as session:
        delivery = WebhookDelivery(
            room_id=room_id,
            event="transcript.completed",
            url="https://example.com/hook",
            payload="{}",
            status="succeeded",
            attempts=2,
            next_attempt_at=None,
        )
        session.add(delivery)
        await session.flush()
        for number, outcome in enumerate(["retrying", "succeeded"], start=1):
            session.add(
                WebhookAttempt(
                    delivery_id=delivery.id,
                    number=number,
                    attempted_at=utcnow(),
                    status_code=503 if outcome == "retrying" else 200,
                    duration_ms=5,
                    outcome=outcome,
                )
            )
        await session.commit()


async def consume(bucket: NotifiedBucket, consumer: SqsConsumer) -> list[PollResult]:
    """Poll until the recording was taken in and the malformed message failed once."""
    results: list[PollResult] = []
    end = time.monotonic() + DEADLINE_SECONDS
    while not (sum(r.processed for r in results) >= 1 and sum(r.failed for r in results) >= 1):
        assert time.monotonic() < end, f"not done after {DEADLINE_SECONDS} s: {results}"
        results.append(await consumer.poll_once())
    return results


async def test_every_family_counts_what_happened(
    app: FastAPI,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    alice: Account,
    moto_server: str,
    notified_bucket: Callable[..., NotifiedBucket],
    tmp_path: Path,
) -> None:
    # Webhooks: two joins, one redelivered, and one with a wrong signature.
    meeting: Meeting = await make_meeting(engine, alice)
    ids = (meeting.platform_meeting_id, meeting.platform_room_name)
    first = client_event("joined", *ids, "p1", 1, created=0)
    assert await post_webhook(client, first) == "applied"
    assert await post_webhook(client, client_event("joined", *ids, "p2", 2, created=1)) == "applied"
    assert await post_webhook(client, first) == "duplicate"
    wrong = client_event("left", *ids, "p2", 1, created=2)
    assert await post_webhook(client, wrong, secret="not-the-secret") == "401"

    # A recording through the SQS consumer (and a malformed message it must leave).
    bucket = notified_bucket(visibility_timeout=1, max_receive_count=5)
    intake = app.state.intake

    async def from_sqs(obj: StoredObject) -> None:
        await intake.receive(obj, Source.sqs)

    consumer = SqsConsumer(
        bucket.queue_url,
        intake=from_sqs,
        wait_seconds=1,
        client=aws_client("sqs", moto_server),
        metrics_engine=engine,
    )
    bucket.put(RECORDING_KEY, b"12345")
    bucket.send("this is not an S3 notification")
    polls = await consume(bucket, consumer)

    # An uploaded file through the upload job, then the same job again: every step reused.
    with TALK.open("rb") as file:
        uploaded = await client.post(
            "/v1/transcripts",
            files={"file": ("talk.m4a", file, "audio/mp4")},
            data={"language": "en"},
            headers=alice.headers,
        )
    assert uploaded.status_code == 202, uploaded.text
    transcript_id = uploaded.json()["id"]
    derived = derived_of(settings)
    backends, _, _ = scripted_backends()
    status = await process_upload(
        transcript_id, engine=engine, derived=derived, backends=backends, workdir=tmp_path
    )
    assert status == "ended"

    async def fetch(into: Path) -> Path:
        raise AssertionError("every step is reused: the source is not needed")

    again = await run_transcript(
        transcript_id,
        engine=engine,
        derived=derived,
        backends=backends,
        fetch_source=fetch,
        request=Request(),
        workdir=tmp_path,
        missing_source="gone",
        retry_hint="retry",
    )
    assert again.status == "ended"

    await add_outgoing_attempts(engine, meeting.room_id)

    found = await scrape(client)
    for family in FAMILIES:
        assert any(family_of(s.name) == family and s.value > 0 for s in found), family

    assert value(found, "reflector_build_info", version=__version__) == 1
    events = "reflector_webhook_events_total"
    joined = {"platform": "whereby", "type": "room.client.joined"}
    assert value(found, events, **joined, outcome="applied") == 2
    assert value(found, events, **joined, outcome="duplicate") == 1
    rejections = "reflector_webhook_rejections_total"
    assert value(found, rejections, platform="whereby", reason="bad_signature") == 1
    assert value(found, "reflector_webhook_signature_failures_total", platform="whereby") == 1
    assert value(found, "reflector_active_meetings", platform="whereby") == 1
    assert value(found, "reflector_meeting_participants", platform="whereby") == 2

    assert sum(s.value for s in found if s.name == "reflector_recordings") == 1
    assert value(found, "reflector_stored_bytes", bucket=bucket.bucket, kind="recordings") == 5
    sqs = "reflector_sqs_messages_total"
    received = sum(r.received for r in polls)
    # The s3:TestEvent, the recording's notification, and the malformed message (maybe more
    # than once, as it is redelivered after the visibility timeout).
    assert received >= 3
    assert value(found, sqs, outcome="received") == received
    assert value(found, sqs, outcome="deleted") == sum(r.deleted for r in polls) == 2
    assert value(found, sqs, outcome="failed") == sum(r.failed for r in polls)
    assert value(found, "reflector_sqs_message_age_seconds_count") == received
    assert value(found, "reflector_sqs_message_age_seconds_bucket", le="+Inf") == received

    step_counts = {
        s.labels["step"]: s.value
        for s in found
        if s.name == "reflector_pipeline_step_duration_seconds_count"
    }
    assert step_counts == dict.fromkeys(STEPS, 1.0)  # the rerun reused them all
    files = [p for p in (derived.root / "transcripts").rglob("*") if p.is_file()]
    derived_files = sum(p.stat().st_size for p in files)
    derived_bytes = value(found, "reflector_stored_bytes", bucket="local", kind="derived")
    assert derived_bytes == derived_files

    outgoing = "reflector_outgoing_webhook_deliveries_total"
    assert value(found, outgoing, event="transcript.completed", outcome="retrying") == 1
    assert value(found, outgoing, event="transcript.completed", outcome="succeeded") == 1


async def test_scrapes_arriving_together_share_one_read(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Several scrapers at once cost at most two reads of the database (one may already be
    under way when the others ask), not one each; a later scrape reads again."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    sync_engine = engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", count)
    try:
        assert (await client.get("/metrics")).status_code == 200
        one_read = len(statements)
        assert one_read > 0
        statements.clear()
        answers = await asyncio.gather(*(client.get("/metrics") for _ in range(8)))
        assert [answer.status_code for answer in answers] == [200] * 8
        assert len(statements) <= 2 * one_read
        statements.clear()
        assert (await client.get("/metrics")).status_code == 200
        assert len(statements) == one_read
    finally:
        event.remove(sync_engine, "before_cursor_execute", count)
