"""The SQS consumer end to end: S3 -> notification -> SQS -> intake, on moto over loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from reflector.recordings.objects import StoredObject
from reflector.recordings.sqs import PollResult, SqsConsumer, queue_region, sqs_wait_seconds
from tests.recordings.conftest import NotifiedBucket, aws_client

MakeBucket = Callable[..., NotifiedBucket]
KEY = "standup-0b1fbe30-2346-4681-85a5-f309f11e509f-2023-10-31T13:09:35Z.mp4"
DEADLINE_SECONDS = 15.0


class Intake:
    """Records what it is given; raises for the first `failures` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[StoredObject] = []
        self.failures = failures
        self.called = asyncio.Event()

    async def __call__(self, obj: StoredObject) -> None:
        self.calls.append(obj)
        self.called.set()
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database unavailable")


def consumer_for(bucket: NotifiedBucket, intake: Intake, **options: Any) -> SqsConsumer:
    options.setdefault("wait_seconds", 1)
    return SqsConsumer(bucket.queue_url, intake=intake, **options)


async def started(consumer: SqsConsumer) -> None:
    """Take the s3:TestEvent moto sends when the notification is configured."""
    result = await consumer.poll_once()
    assert (result.received, result.skipped, result.deleted) == (1, 1, 1)


async def poll_until(
    consumer: SqsConsumer, done: Callable[[], bool], deadline: float = DEADLINE_SECONDS
) -> list[PollResult]:
    results: list[PollResult] = []
    end = time.monotonic() + deadline
    while not done():
        assert time.monotonic() < end, f"not done after {deadline} s: {results}"
        results.append(await consumer.poll_once())
    return results


def s3_event(bucket: str, key: str, size: int = 5) -> str:
    record = {
        "eventName": "ObjectCreated:Put",
        "eventTime": "2026-11-28T12:00:05.000Z",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size}},
    }
    return json.dumps({"Records": [record]})


def test_wait_seconds_and_region() -> None:
    assert sqs_wait_seconds(60) == 20
    assert sqs_wait_seconds(20) == 20
    assert sqs_wait_seconds(5) == 5
    assert queue_region("https://sqs.eu-west-1.amazonaws.com/123456789012/q") == "eu-west-1"
    assert queue_region("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q") == "cn-north-1"
    assert queue_region("https://ap-south-1.queue.amazonaws.com/123456789012/q") == "ap-south-1"
    assert queue_region("http://127.0.0.1:4566/000000000000/q") is None


async def test_an_uploaded_recording_is_taken_in_once(
    aws_env: str, notified_bucket: MakeBucket
) -> None:
    bucket = notified_bucket()
    intake = Intake()
    # No client given: it is built from the environment (AWS_ENDPOINT_URL, credentials).
    consumer = consumer_for(bucket, intake)
    await started(consumer)

    bucket.put(f"team/{KEY}", b"12345")
    bucket.put("team/notes.txt", b"not a recording")
    results = await poll_until(consumer, lambda: bucket.counts() == (0, 0) and bool(intake.calls))

    [obj] = intake.calls
    assert (obj.bucket, obj.key, obj.size) == (bucket.bucket, f"team/{KEY}", 5)
    assert obj.event_time is not None
    assert obj.event_time.tzinfo is not None
    assert sum(r.received for r in results) == 2
    assert sum(r.processed for r in results) == 1
    assert sum(r.skipped for r in results) == 1
    assert sum(r.deleted for r in results) == 2
    assert sum(r.failed for r in results) == 0
    assert bucket.counts(bucket.dead_letter_url) == (0, 0)


async def test_a_failed_intake_leaves_the_message_for_redelivery(
    moto_server: str, notified_bucket: MakeBucket
) -> None:
    bucket = notified_bucket(visibility_timeout=1, max_receive_count=3)
    intake = Intake(failures=1)
    consumer = consumer_for(bucket, intake, client=aws_client("sqs", moto_server))
    await started(consumer)

    bucket.put(KEY)
    with capture_logs() as logs:
        first = await poll_until(consumer, lambda: bool(intake.calls))
    assert first[-1].failed == 1
    assert first[-1].deleted == 0
    assert bucket.counts() == (0, 1)  # in flight, not deleted
    [failure] = [e for e in logs if "intake failed" in e["event"]]
    assert failure["log_level"] == "error"
    assert failure["key"] == KEY
    assert failure["exc_info"]

    # Invisible until the visibility timeout has passed; then it comes again.
    await poll_until(consumer, lambda: len(intake.calls) == 2)
    assert intake.calls[0] == intake.calls[1]
    assert intake.calls[0].key == KEY
    await poll_until(consumer, lambda: bucket.counts() == (0, 0))
    assert bucket.counts(bucket.dead_letter_url) == (0, 0)


async def test_a_malformed_message_goes_to_the_dead_letter_queue(
    moto_server: str, notified_bucket: MakeBucket
) -> None:
    bucket = notified_bucket(visibility_timeout=1, max_receive_count=2)
    intake = Intake()
    consumer = consumer_for(bucket, intake, client=aws_client("sqs", moto_server))
    await started(consumer)

    bad_id = bucket.send("this is not an S3 notification")
    bucket.send(s3_event(bucket.bucket, "raw/" + KEY.replace(":", "%3A")))
    with capture_logs() as logs:
        results = await poll_until(consumer, lambda: bucket.counts(bucket.dead_letter_url)[0] == 1)
    assert [obj.key for obj in intake.calls] == ["raw/" + KEY]
    assert bucket.counts() == (0, 0)
    assert sum(r.failed for r in results) == 2  # received twice, then moved
    assert sum(r.deleted for r in results) == 1
    warnings = [e for e in logs if "not an S3 notification" in e["event"]]
    assert [e["message_id"] for e in warnings] == [bad_id, bad_id]
    assert all("not JSON" in e["reason"] for e in warnings)
    assert [e["receive_count"] for e in warnings] == ["1", "2"]
    dead = bucket.sqs.receive_message(QueueUrl=bucket.dead_letter_url)["Messages"]
    assert [m["Body"] for m in dead] == ["this is not an S3 notification"]


async def test_several_messages_are_deleted_in_one_batch(
    moto_server: str, notified_bucket: MakeBucket
) -> None:
    bucket = notified_bucket(visibility_timeout=30)
    intake = Intake()
    consumer = consumer_for(bucket, intake, client=aws_client("sqs", moto_server))
    await started(consumer)
    keys = [f"room-{n}-2026-11-28T12:00:0{n}Z.mp4" for n in range(4)]
    for key in keys:
        bucket.send(s3_event(bucket.bucket, key))
    results = await poll_until(consumer, lambda: len(intake.calls) == len(keys))
    assert sorted(obj.key for obj in intake.calls) == keys
    assert sum(r.deleted for r in results) == len(keys)
    assert max(r.deleted for r in results) > 1  # at least one batch
    assert bucket.counts() == (0, 0)


async def test_run_takes_recordings_in_and_stops_during_a_long_poll(
    aws_env: str, notified_bucket: MakeBucket
) -> None:
    bucket = notified_bucket()
    intake = Intake()
    consumer = consumer_for(bucket, intake, wait_seconds=20)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    bucket.put(KEY)
    async with asyncio.timeout(DEADLINE_SECONDS):
        await intake.called.wait()
    assert [obj.key for obj in intake.calls] == [KEY]
    for _ in range(100):  # the delete follows the intake
        if bucket.counts() == (0, 0):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail(f"the message was not deleted: {bucket.counts()}")

    # The consumer is in a 20 s long poll now; stopping does not wait for it.
    await asyncio.sleep(0.2)
    with capture_logs() as logs:
        stop.set()
        began = time.monotonic()
        async with asyncio.timeout(2):
            await task
    assert time.monotonic() - began < 1
    assert [e["event"] for e in logs] == ["SQS consumer stopped"]


async def test_run_keeps_going_through_errors(moto_server: str) -> None:
    missing = f"{moto_server}/123456789012/no-such-queue"
    consumer = SqsConsumer(
        missing,
        intake=Intake(),
        wait_seconds=1,
        client=aws_client("sqs", moto_server),
        backoff_initial_seconds=0.05,
        backoff_max_seconds=0.1,
    )
    stop = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(consumer.run(stop))
        await asyncio.sleep(0.6)
        assert not task.done()
        stop.set()
        async with asyncio.timeout(2):
            await task
    failures = [e for e in logs if "receiving from SQS failed" in e["event"]]
    assert len(failures) >= 3
    assert all("QueueDoesNotExist" in e["error"] for e in failures)
    assert [e["retry_in"] for e in failures[:3]] == [0.05, 0.1, 0.1]


def test_max_messages_is_what_sqs_allows() -> None:
    with pytest.raises(ValueError, match="max_messages"):
        SqsConsumer("q", intake=Intake(), wait_seconds=1, client=object(), max_messages=11)
