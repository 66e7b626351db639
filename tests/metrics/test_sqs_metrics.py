"""The SQS consumer's counts: a database that refuses them does not stop the consumer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from structlog.testing import capture_logs

from reflector.db.engine import create_engine
from reflector.recordings.sqs import SqsConsumer
from tests.recordings.conftest import NotifiedBucket, aws_client


async def test_a_failed_metrics_write_leaves_the_messages_handled(
    moto_server: str, notified_bucket: Callable[..., NotifiedBucket], tmp_path: Path
) -> None:
    bucket = notified_bucket()
    # A database without the metric_counters table: every metrics write fails.
    broken = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}")

    async def intake(_obj: object) -> None:
        raise AssertionError("only the s3:TestEvent is in the queue")

    consumer = SqsConsumer(
        bucket.queue_url,
        intake=intake,
        wait_seconds=1,
        client=aws_client("sqs", moto_server),
        metrics_engine=broken,
    )
    try:
        with capture_logs() as logs:
            result = await consumer.poll_once()
    finally:
        await broken.dispose()
    assert (result.received, result.skipped, result.deleted) == (1, 1, 1)
    assert bucket.counts() == (0, 0)
    [warning] = [e for e in logs if e["event"].startswith("writing metrics failed")]
    assert warning["metrics"] == [
        "reflector_sqs_message_age_seconds_bucket",
        "reflector_sqs_message_age_seconds_count",
        "reflector_sqs_message_age_seconds_sum",
        "reflector_sqs_messages_total",
    ]
