from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from reflector.recordings.objects import StoredObject
from reflector.recordings.s3_events import MalformedNotification, TestEvent, parse_notification

KEY = "standup-0b1fbe30-2346-4681-85a5-f309f11e509f-2023-10-31T13:09:35Z.mp4"
ENCODED = "standup-0b1fbe30-2346-4681-85a5-f309f11e509f-2023-10-31T13%3A09%3A35Z.mp4"


def record(
    key: str = ENCODED,
    *,
    event: str = "ObjectCreated:Put",
    bucket: str = "rec",
    size: Any = 1234,
    time: Any = "2023-10-31T14:09:36.512Z",
) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key, "eTag": "abc", "sequencer": "0055AED6DCD90281E5"}
    if size is not None:
        obj["size"] = size
    value: dict[str, Any] = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "eu-west-1",
        "eventName": event,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": obj},
    }
    if time is not None:
        value["eventTime"] = time
    return value


def event(*records: dict[str, Any]) -> str:
    return json.dumps({"Records": list(records)})


def sns(message: str) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "b1",
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:recordings",
            "Subject": "Amazon S3 Notification",
            "Message": message,
        }
    )


TIME = datetime(2023, 10, 31, 14, 9, 36, 512000, tzinfo=UTC)
CREATED = StoredObject("rec", KEY, 1234, TIME)
TEST_EVENT = json.dumps(
    {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2023-10-31T13:00:00.000Z",
        "Bucket": "rec",
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(event(record()), [CREATED], id="plain"),
        pytest.param(sns(event(record())), [CREATED], id="sns-wrapped"),
        pytest.param(TEST_EVENT, TestEvent("rec"), id="test-event"),
        pytest.param(sns(TEST_EVENT), TestEvent("rec"), id="sns-test-event"),
        pytest.param(
            json.dumps({"Event": "s3:TestEvent"}), TestEvent(None), id="test-event-no-bucket"
        ),
        pytest.param(
            event(record("team%2Fmy+talk%3A+notes.mp4", event="s3:ObjectCreated:Copy")),
            [StoredObject("rec", "team/my talk: notes.mp4", 1234, TIME)],
            id="encoded-key-and-s3-prefix",
        ),
        pytest.param(
            event(record("a%2Bb.mp4")),
            [StoredObject("rec", "a+b.mp4", 1234, TIME)],
            id="plus-sign-itself",
        ),
        pytest.param(
            event(
                record(event="ObjectRemoved:Delete", size=None),
                record(event="ObjectRestore:Completed"),
            ),
            [],
            id="not-created",
        ),
        pytest.param(
            event(
                record(event="ObjectCreated:CompleteMultipartUpload"),
                record("other.mp4", event="ObjectRemoved:Delete"),
                record(event="ObjectCreated:Put", size=1234),
                record("other.mp4", bucket="second", time="2023-10-31T14:09:36+01:00"),
            ),
            [
                CREATED,
                StoredObject(
                    "second",
                    "other.mp4",
                    1234,
                    datetime(2023, 10, 31, 13, 9, 36, tzinfo=UTC),
                ),
            ],
            id="same-object-twice-once",
        ),
        pytest.param(
            event(record(size=None, time=None)),
            [StoredObject("rec", KEY)],
            id="no-size-no-time",
        ),
        pytest.param(
            event(record(time="2023-10-31T14:09:36")),
            [StoredObject("rec", KEY, 1234, datetime(2023, 10, 31, 14, 9, 36, tzinfo=UTC))],
            id="naive-time-is-utc",
        ),
        pytest.param(event(), [], id="no-records"),
    ],
)
def test_parse(body: str, expected: list[StoredObject] | TestEvent) -> None:
    parsed = parse_notification(body)
    assert parsed == expected
    if isinstance(parsed, list):
        assert all(o.event_time is None or o.event_time.tzinfo is not None for o in parsed)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param("", "not JSON", id="empty"),
        pytest.param("not json", "not JSON", id="text"),
        pytest.param("[1, 2]", "not an object", id="array"),
        pytest.param('"Records"', "not an object", id="string"),
        pytest.param("{}", "no Records list", id="empty-object"),
        pytest.param(json.dumps({"Records": {"a": 1}}), "no Records list", id="records-dict"),
        pytest.param(json.dumps({"Records": ["x"]}), "Record 0 is not an object", id="record-str"),
        pytest.param(json.dumps({"Records": [{"s3": {}}]}), "no eventName", id="no-event-name"),
        pytest.param(
            event(record(), {**record(), "s3": {"object": {"key": "k"}}}),
            "Record 1 (ObjectCreated:Put) has no s3.bucket.name",
            id="no-bucket",
        ),
        pytest.param(
            event({**record(), "s3": {"bucket": {"name": "b"}, "object": {"key": ""}}}),
            "no s3.object.key",
            id="empty-key",
        ),
        pytest.param(event(record(size="12")), "invalid s3.object.size", id="size-string"),
        pytest.param(event(record(size=-1)), "invalid s3.object.size", id="size-negative"),
        pytest.param(event(record(time="yesterday")), "not an ISO 8601 time", id="bad-time"),
        pytest.param(event(record(time=12)), "eventTime that is not a string", id="time-int"),
        pytest.param(
            json.dumps({"Type": "Notification", "Message": {"Records": []}}),
            "Message is not a string",
            id="sns-message-object",
        ),
        pytest.param(sns("<xml/>"), "SNS envelope's Message is not JSON", id="sns-not-json"),
        pytest.param(
            json.dumps({"Type": "SubscriptionConfirmation", "Token": "t"}),
            "no Records list",
            id="sns-subscription",
        ),
    ],
)
def test_malformed(body: str, words: str) -> None:
    with pytest.raises(MalformedNotification) as caught:
        parse_notification(body)
    message = str(caught.value)
    assert words in message
    assert message.endswith(".")
    assert "\n" not in message
