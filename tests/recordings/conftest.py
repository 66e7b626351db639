"""S3 and SQS on loopback: one moto server for the session, and buckets wired to queues.

`moto_server` yields the server's URL. `aws_env` points boto3 at it through the standard
environment (fake credentials, AWS_ENDPOINT_URL, a region) and cuts it off from the machine's
own AWS set-up (~/.aws, the instance metadata service). `notified_bucket()` makes a fresh
bucket whose ObjectCreated notifications go to a fresh queue with a dead-letter queue.
moto checks no signatures, so any credentials do.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
FAKE_KEY = "testing"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The URL of a moto server (S3, SQS, IAM, ...) on 127.0.0.1 and a free port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def isolate_from_machine_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS credentials, endpoint or profile from this machine reach boto3."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    # Without credentials boto3 would ask 169.254.169.254: only loopback traffic in tests.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """boto3 (and Settings) configured for the moto server through the environment; its URL."""
    isolate_from_machine_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


def aws_client(service: str, endpoint: str) -> Any:
    """A boto3 client for the moto server that needs no environment."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=FAKE_KEY,
        aws_secret_access_key=FAKE_KEY,
    )


def unique_name(stem: str) -> str:
    # The server lives for the session: every test gets buckets and queues of its own.
    return f"{stem}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class NotifiedBucket:
    """A bucket whose ObjectCreated notifications go to `queue_url`; after
    `max_receive_count` receives a message moves on to `dead_letter_url`."""

    endpoint: str
    bucket: str
    queue_url: str
    dead_letter_url: str
    s3: Any
    sqs: Any

    def put(self, key: str, data: bytes = b"recording", content_type: str = "video/mp4") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def send(self, body: str) -> str:
        """Put a message straight into the queue; its id."""
        response = self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)
        return str(response["MessageId"])

    def counts(self, queue_url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages of the queue (default: the main one)."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=queue_url or self.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )


def create_notified_bucket(
    endpoint: str,
    *,
    bucket: str | None = None,
    visibility_timeout: int = 1,
    max_receive_count: int = 2,
    prefix: str = "",
) -> NotifiedBucket:
    """Bucket -> ObjectCreated notification (keys under `prefix`) -> queue -> dead-letter
    queue. moto sends an s3:TestEvent into the queue when the notification is set up."""
    s3, sqs = aws_client("s3", endpoint), aws_client("sqs", endpoint)
    name = bucket or unique_name("recordings")
    s3.create_bucket(Bucket=name)
    dead_letter_url = sqs.create_queue(QueueName=f"{name}-dead")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(
        QueueUrl=dead_letter_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receive_count}
            ),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    configuration: dict[str, Any] = {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}
    if prefix:
        configuration["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
    s3.put_bucket_notification_configuration(
        Bucket=name, NotificationConfiguration={"QueueConfigurations": [configuration]}
    )
    return NotifiedBucket(endpoint, name, queue_url, dead_letter_url, s3, sqs)


@pytest.fixture
def notified_bucket(moto_server: str) -> Callable[..., NotifiedBucket]:
    """`notified_bucket(**options)`: create_notified_bucket on the session's moto server."""

    def make(**options: Any) -> NotifiedBucket:
        return create_notified_bucket(moto_server, **options)

    return make
