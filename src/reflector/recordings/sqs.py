"""The SQS consumer: long-polls the queue the recording bucket notifies, hands each created
object to the intake, and deletes a message only once everything in it was taken in.

A message is deleted when it was handled (every intake call returned) or needs nothing (an
s3:TestEvent, no ObjectCreated record, only keys that are not recordings). A malformed
message is left alone: after the queue's maxReceiveCount receives, its redrive policy moves
it to the dead-letter queue, where someone can look at it. A message whose intake failed is
left too, and SQS redelivers it after its visibility timeout; the intake must therefore be
idempotent (S3 may also announce one object twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3  # type: ignore[import-untyped, unused-ignore]
from botocore.config import Config  # type: ignore[import-untyped, unused-ignore]
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.logs import get_logger
from reflector.metrics import counters
from reflector.platforms.whereby.recordings import is_recording_key as whereby_recording_key
from reflector.recordings.objects import StoredObject
from reflector.recordings.s3_events import MalformedNotification, TestEvent, parse_notification

_log = get_logger(__name__)

T = TypeVar("T")

# SQS refuses a longer long-poll wait, and more messages per receive.
MAX_WAIT_SECONDS = 20
MAX_MESSAGES = 10
FALLBACK_REGION = "us-east-1"
# sqs.<region>.amazonaws.com, and the legacy <region>.queue.amazonaws.com.
_QUEUE_HOST = re.compile(
    r"^https?://(?:sqs[.-](?P<region>[a-z0-9-]+)|(?P<legacy>[a-z0-9-]+)\.queue)"
    r"\.amazonaws\.com(?:\.cn)?/"
)


def sqs_wait_seconds(settings_value: int) -> int:
    """The long-poll wait to ask for: the setting, capped at what SQS accepts (20)."""
    return max(0, min(settings_value, MAX_WAIT_SECONDS))


def queue_region(queue_url: str) -> str | None:
    """The region an AWS queue URL names (`https://sqs.eu-west-1.amazonaws.com/1/q`)."""
    match = _QUEUE_HOST.match(queue_url)
    return (match["region"] or match["legacy"]) if match else None


def sqs_client(
    queue_url: str, *, endpoint_url: str | None = None, region_name: str | None = None
) -> Any:
    """A boto3 SQS client for the queue. The region is the queue URL's, else `region_name`,
    else boto3's default (AWS_DEFAULT_REGION, ~/.aws), else us-east-1; the endpoint is
    `endpoint_url`, else boto3's own (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_SQS), else AWS.
    Credentials come from the standard chain."""
    region = (
        queue_region(queue_url) or region_name or boto3.Session().region_name or FALLBACK_REGION
    )
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url or None,
        region_name=region,
        # The read timeout must outlast the longest long poll.
        config=Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=10,
            read_timeout=MAX_WAIT_SECONDS + 40,
        ),
    )


@dataclass
class PollResult:
    """What one receive did, in messages. `failed` counts malformed messages and messages
    whose intake raised (both left in the queue); `deleted` those acknowledged."""

    received: int = 0
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    deleted: int = 0


class SqsConsumer:
    def __init__(
        self,
        queue_url: str,
        *,
        intake: Callable[[StoredObject], Awaitable[None]],
        wait_seconds: int,
        client: Any | None = None,
        max_messages: int = MAX_MESSAGES,
        # By default only objects named as Whereby names recordings are taken in.
        is_recording_key: Callable[[str], bool] = whereby_recording_key,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        backoff_initial_seconds: float = 1.0,
        backoff_max_seconds: float = 60.0,
        # Where to count messages (metric_counters, for /metrics); None counts nothing.
        metrics_engine: AsyncEngine | None = None,
    ) -> None:
        if not 1 <= max_messages <= MAX_MESSAGES:
            raise ValueError(f"max_messages must be 1 to {MAX_MESSAGES} (got {max_messages})")
        self.queue_url = queue_url
        self.intake = intake
        self.wait_seconds = sqs_wait_seconds(wait_seconds)
        self.max_messages = max_messages
        self.is_recording_key = is_recording_key
        self.client: Any = client or sqs_client(
            queue_url, endpoint_url=endpoint_url, region_name=region_name
        )
        self.backoff_initial_seconds = backoff_initial_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.metrics_engine = metrics_engine
        self._attribute_names = _attribute_names_parameter(self.client)

    async def poll_once(self) -> PollResult:
        """One long-poll receive, then every message it brought handled. AWS and network
        errors of the receive propagate; those of intake and delete are logged."""
        return await self._handle(await self._receive())

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set. Errors are logged and retried with growing pauses; the
        loop itself never fails. Setting `stop` during a long poll returns at once: messages
        that receive brings back stay invisible until their visibility timeout, then come
        again. Messages already received are handled before returning."""
        _log.info("SQS consumer started", queue_url=self.queue_url, wait=self.wait_seconds)
        backoff = self.backoff_initial_seconds
        while not stop.is_set():
            try:
                messages = await _unless_stopped(self._receive(), stop)
                if messages is None:
                    break
                await self._handle(messages)
            except Exception as exc:
                _log.warning(
                    "receiving from SQS failed; trying again",
                    queue_url=self.queue_url,
                    error=f"{exc.__class__.__name__}: {exc}",
                    retry_in=backoff,
                )
                await _sleep_unless_stopped(backoff, stop)
                backoff = min(backoff * 2, self.backoff_max_seconds)
            else:
                backoff = self.backoff_initial_seconds
        _log.info("SQS consumer stopped", queue_url=self.queue_url)

    async def _receive(self) -> list[dict[str, Any]]:
        response = await _in_daemon_thread(
            lambda: self.client.receive_message(
                QueueUrl=self.queue_url,
                WaitTimeSeconds=self.wait_seconds,
                MaxNumberOfMessages=self.max_messages,
                **{self._attribute_names: ["ApproximateReceiveCount", "SentTimestamp"]},
            )
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    async def _handle(self, messages: list[dict[str, Any]]) -> PollResult:
        received_at = time.time()
        result = PollResult(received=len(messages))
        done: list[dict[str, Any]] = []
        for message in messages:
            outcome = await self._handle_message(message)
            if outcome == "processed":
                result.processed += 1
            elif outcome == "skipped":
                result.skipped += 1
            else:
                result.failed += 1
                continue
            done.append(message)
        result.deleted = await self._delete(done)
        if self.metrics_engine is not None and messages:
            await counters.write(self.metrics_engine, _poll_metrics(messages, result, received_at))
        return result

    async def _handle_message(self, message: dict[str, Any]) -> str:
        message_id = str(message.get("MessageId", "?"))
        receives = message.get("Attributes", {}).get("ApproximateReceiveCount")
        try:
            parsed = parse_notification(str(message.get("Body", "")))
        except MalformedNotification as exc:
            _log.warning(
                "SQS message is not an S3 notification; left for the dead-letter queue",
                queue_url=self.queue_url,
                message_id=message_id,
                receive_count=receives,
                reason=str(exc),
            )
            return "failed"
        if isinstance(parsed, TestEvent):
            _log.info("S3 test event acknowledged", message_id=message_id, bucket=parsed.bucket)
            return "skipped"
        wanted = [obj for obj in parsed if self.is_recording_key(obj.key)]
        if not wanted:
            _log.debug(
                "SQS message names no recording; acknowledged",
                message_id=message_id,
                keys=[obj.key for obj in parsed],
            )
            return "skipped"
        ok = True
        for obj in wanted:
            try:
                await self.intake(obj)
            except Exception:
                # Left for redelivery; the other objects still go in (the intake is idempotent).
                _log.exception(
                    "recording intake failed; the SQS message is left for redelivery",
                    message_id=message_id,
                    receive_count=receives,
                    bucket=obj.bucket,
                    key=obj.key,
                )
                ok = False
        return "processed" if ok else "failed"

    async def _delete(self, messages: list[dict[str, Any]]) -> int:
        if not messages:
            return 0
        try:
            if len(messages) == 1:
                await asyncio.to_thread(
                    self.client.delete_message,
                    QueueUrl=self.queue_url,
                    ReceiptHandle=messages[0]["ReceiptHandle"],
                )
                return 1
            entries = [
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(messages)
            ]
            response = await asyncio.to_thread(
                self.client.delete_message_batch, QueueUrl=self.queue_url, Entries=entries
            )
        except Exception as exc:
            # Handled but not deleted: the message comes again and the intake sees it twice.
            _log.warning(
                "deleting SQS messages failed; they will come again",
                queue_url=self.queue_url,
                message_ids=[m.get("MessageId") for m in messages],
                error=f"{exc.__class__.__name__}: {exc}",
            )
            return 0
        failed = response.get("Failed", [])
        for failure in failed:
            _log.warning(
                "deleting SQS messages failed; they will come again",
                queue_url=self.queue_url,
                message_id=messages[int(failure["Id"])].get("MessageId"),
                error=f"{failure.get('Code')}: {failure.get('Message')}",
            )
        return len(response.get("Successful", []))


def _poll_metrics(
    messages: list[dict[str, Any]], result: PollResult, received_at: float
) -> counters.Batch:
    """The poll's counts, and each message's age at receipt (from its SentTimestamp, in
    milliseconds since the epoch; a clock behind SQS's reads as age 0)."""
    batch = counters.Batch()
    family = counters.SQS_MESSAGES
    batch.increment(family.name, {"outcome": "received"}, result.received)
    batch.increment(family.name, {"outcome": "deleted"}, result.deleted)
    batch.increment(family.name, {"outcome": "failed"}, result.failed)
    age = counters.SQS_MESSAGE_AGE
    for message in messages:
        sent = message.get("Attributes", {}).get("SentTimestamp")
        try:
            seconds = max(0.0, received_at - int(sent) / 1000)
        except (TypeError, ValueError):
            continue
        batch.observe(age.name, None, seconds, age.buckets)
    return batch


def _attribute_names_parameter(client: Any) -> str:
    # botocore releases before mid-2024 know only the deprecated AttributeNames.
    try:
        members = client.meta.service_model.operation_model("ReceiveMessage").input_shape.members
    except AttributeError:
        return "MessageSystemAttributeNames"
    modern = "MessageSystemAttributeNames"
    return modern if modern in members else "AttributeNames"


async def _in_daemon_thread(call: Callable[[], T]) -> T:
    """`call()` in a daemon thread. Unlike asyncio.to_thread, a caller that stops waiting
    leaves nothing that holds up the event loop's or the process's exit: a long poll
    abandoned at shutdown just ends on its own."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        # A closed loop refuses the callback: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(outcome)

    def target() -> None:
        try:
            value = call()
        except BaseException as exc:
            error = exc
            settle(lambda: None if future.done() else future.set_exception(error))
        else:
            settle(lambda: None if future.done() else future.set_result(value))

    threading.Thread(target=target, name="sqs-receive", daemon=True).start()
    return await future


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """`work`'s result, or None (and `work` cancelled) when `stop` is set first."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        finished = task.done()
        if not finished:
            task.cancel()
    return task.result() if finished else None


async def _sleep_unless_stopped(seconds: float, stop: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
