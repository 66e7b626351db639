"""S3 event notifications as they arrive in SQS message bodies, parsed into StoredObjects.

Accepted shapes: an S3 event (`{"Records": [...]}`), the same inside an SNS envelope
(`{"Type": "Notification", "Message": "<json>"}`, for a bucket that notifies a topic the queue
subscribes to), and S3's `s3:TestEvent`. Keys arrive URL-encoded (`:` as `%3A`, space as `+`,
some servers also `/` as `%2F`) and are decoded here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from reflector.recordings.objects import StoredObject

_CREATED = ("ObjectCreated:", "s3:ObjectCreated:")


class MalformedNotification(ValueError):
    """The body is not an S3 notification this service understands; the message says why."""


@dataclass(frozen=True)
class TestEvent:
    """S3's check that the notification works, sent when it is configured."""

    __test__ = False  # not a pytest test class, despite the name

    bucket: str | None


def parse_notification(body: str) -> list[StoredObject] | TestEvent:
    """The objects an SQS message body announces as created, each once, in message order.

    Records of other events (removals, restores, ...) are left out, so the list may be empty.
    Raises MalformedNotification for anything else."""
    document = _json(body, "The message body")
    if document.get("Type") == "Notification" and "Message" in document:
        message = document["Message"]
        if not isinstance(message, str):
            raise MalformedNotification("The SNS envelope's Message is not a string.")
        document = _json(message, "The SNS envelope's Message")
    if document.get("Event") == "s3:TestEvent":
        bucket = document.get("Bucket")
        return TestEvent(bucket if isinstance(bucket, str) else None)
    records = document.get("Records")
    if not isinstance(records, list):
        raise MalformedNotification(
            "The message has no Records list: it is not an S3 event notification."
        )
    found: dict[tuple[str, str], StoredObject] = {}
    for index, record in enumerate(records):
        stored = _created_object(record, index)
        if stored is not None:
            # A multipart upload may announce one object twice: keep the first.
            found.setdefault((stored.bucket, stored.key), stored)
    return list(found.values())


def _json(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise MalformedNotification(f"{what} is not JSON: {exc}.") from None
    if not isinstance(value, dict):
        raise MalformedNotification(f"{what} is JSON but not an object.")
    return value


def _created_object(record: Any, index: int) -> StoredObject | None:
    where = f"Record {index}"
    if not isinstance(record, dict):
        raise MalformedNotification(f"{where} is not an object.")
    name = record.get("eventName")
    if not isinstance(name, str):
        raise MalformedNotification(f"{where} has no eventName.")
    if not name.startswith(_CREATED):
        return None
    s3 = _member(record, "s3")
    bucket_name = _member(_member(s3, "bucket"), "name")
    obj = _member(s3, "object")
    key = _member(obj, "key")
    if not isinstance(bucket_name, str) or not bucket_name:
        raise MalformedNotification(f"{where} ({name}) has no s3.bucket.name.")
    if not isinstance(key, str) or not key:
        raise MalformedNotification(f"{where} ({name}) has no s3.object.key.")
    size = _member(obj, "size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise MalformedNotification(f"{where} ({name}) has an invalid s3.object.size {size!r}.")
    return StoredObject(
        bucket=bucket_name,
        key=unquote_plus(key),
        size=size,
        event_time=_event_time(record.get("eventTime"), where),
    )


def _member(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else None


def _event_time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedNotification(f"{where} has an eventTime that is not a string.")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedNotification(
            f"{where} has an eventTime that is not an ISO 8601 time: {value!r}."
        ) from None
    # S3 writes UTC with a Z; a time without a zone is read as UTC too.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
