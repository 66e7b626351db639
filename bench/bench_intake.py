"""Time from a recording's upload to its row being stored with its job enqueued, on the default
settings.

moto (S3 + SQS, loopback) with the bucket's ObjectCreated notifications going to a queue;
`reflector serve` with SQS_POLLING_TIMEOUT_SECONDS at its default (long polls of 20 s) and
its embedded worker. 20 uploads, 1.5 s apart, each named as Whereby names a recording of a
meeting the server knows. The intake stores the row and enqueues the job in one call, so a
recording's first appearance in GET /v1/recordings marks both. (When the job then starts
depends on free workers: each job now runs the whole pipeline, seconds of work per recording,
so one embedded worker cannot start 20 jobs arriving 1.5 s apart within 2 s of each.)
Baseline, same run, after the server stopped: uploads whose notification this script reads
straight from the queue with a long poll (the S3 -> SQS delivery delay itself).

Target: p95 <= 2 s.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import httpx
from moto.server import ThreadedMotoServer

from reflector.platforms.whereby.recordings import object_key
from server import free_port, serve

UPLOADS = 20
SPACING = 1.5
MEDIA = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "media" / "talk.mp4"


def aws(service: str, endpoint: str) -> object:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def main() -> None:
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    s3, sqs = aws("s3", endpoint), aws("sqs", endpoint)
    s3.create_bucket(Bucket="bench-recordings")  # type: ignore[attr-defined]
    queue = sqs.create_queue(QueueName="bench-intake")["QueueUrl"]  # type: ignore[attr-defined]
    arn = sqs.get_queue_attributes(  # type: ignore[attr-defined]
        QueueUrl=queue, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(  # type: ignore[attr-defined]
        Bucket="bench-recordings",
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "RECORDING_STORAGE_AWS_BUCKET_NAME": "bench-recordings",
        "AWS_PROCESS_RECORDING_QUEUE_URL": queue,
        "WHEREBY_SANDBOX_PORT": str(free_port()),
    }
    data = MEDIA.read_bytes()
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(), serve(env) as server:
        auth = {"Authorization": f"Bearer {server.token}"}
        httpx.post(f"{server.base}/v1/rooms", json={"name": "bench"}, headers=auth)
        meeting = httpx.post(f"{server.base}/v1/rooms/bench/meeting", headers=auth, timeout=30)
        room_name = meeting.json()["platform_room_name"]
        start = datetime.now(UTC).replace(microsecond=0)
        uploaded: dict[str, float] = {}
        started: dict[str, float] = {}

        def watch() -> None:
            while len(started) < UPLOADS:
                items = httpx.get(
                    f"{server.base}/v1/recordings", params={"limit": 100}, headers=auth
                ).json()["items"]
                now = time.monotonic()
                for item in items:
                    if item["key"] not in started:
                        started[item["key"]] = now
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        for index in range(UPLOADS):
            key = object_key(room_name, start + timedelta(seconds=index))
            uploaded[key] = time.monotonic()
            s3.put_object(  # type: ignore[attr-defined]
                Bucket="bench-recordings", Key=key, Body=data, ContentType="video/mp4"
            )
            time.sleep(SPACING)
        watcher.join(timeout=60)
        latencies = sorted(started[k] - uploaded[k] for k in uploaded if k in started)
    baseline = delivery_delays(s3, sqs, queue, room_name, start, data)
    moto.stop()
    missing = UPLOADS - len(latencies)
    p50 = statistics.median(latencies)
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    print(f"uploads: {UPLOADS}, jobs enqueued: {len(latencies)}, missing: {missing}")
    print(
        f"upload -> stored, job enqueued: p50 {p50:.2f} s  p95 {p95:.2f} s  "
        f"max {latencies[-1]:.2f} s"
    )
    print(f"baseline S3 -> SQS delivery: median {statistics.median(baseline):.3f} s")
    print(f"ratio p50 / baseline: {p50 / max(statistics.median(baseline), 1e-3):.1f}")
    print(f"ratio p95 / target (2 s): {p95 / 2:.2f}")
    print(f"target (p95 <= 2 s, none missing): {'met' if p95 <= 2 and not missing else 'NOT met'}")
    print(json.dumps({"p50": round(p50, 3), "p95": round(p95, 3)}))


def delivery_delays(
    s3: object, sqs: object, queue: str, room_name: str, start: datetime, data: bytes
) -> list[float]:
    # Whatever the stopped server left in the queue is not ours to time.
    sqs.purge_queue(QueueUrl=queue)  # type: ignore[attr-defined]
    delays = []
    for index in range(5):
        key = object_key(room_name, start + timedelta(minutes=10, seconds=index))
        sent = time.monotonic()
        s3.put_object(Bucket="bench-recordings", Key=key, Body=data)  # type: ignore[attr-defined]
        while True:
            got = sqs.receive_message(  # type: ignore[attr-defined]
                QueueUrl=queue, WaitTimeSeconds=5, MaxNumberOfMessages=10
            ).get("Messages", [])
            keys = [m["Body"] for m in got]
            for message in got:
                sqs.delete_message(  # type: ignore[attr-defined]
                    QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"]
                )
            if any(key.split("/")[-1][:20] in body for body in keys):
                delays.append(time.monotonic() - sent)
                break
    return delays


if __name__ == "__main__":
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    main()
