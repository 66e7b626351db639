"""The whole road over real HTTP on loopback: the sandbox records into an S3 bucket (moto),
the bucket notifies SQS, the server's consumer stores the recording and enqueues its job on
Redis, and a separate `reflector worker` processes it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.processes import free_port, reflector_bin, start_serve, wait_for
from tests.recordings.conftest import NotifiedBucket

REDIS_URL = "redis://127.0.0.1:6379/12"


@pytest.fixture
def redis_broker() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")
    yield REDIS_URL
    client.flushdb()
    client.close()


def test_recording_from_bucket_to_completed(
    aws_env: str,
    notified_bucket: Callable[..., NotifiedBucket],
    redis_broker: str,
    tmp_path: Path,
) -> None:
    bucket = notified_bucket(visibility_timeout=30)
    sandbox_port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WHEREBY_", "DATABASE_URL", "REFLECTOR_ENV_FILE"))
    }
    env |= {
        "DATA_DIR": str(tmp_path / "data"),
        "RECORDING_STORAGE_AWS_BUCKET_NAME": f"{bucket.bucket}/raw",
        "AWS_WHEREBY_ACCESS_KEY_ID": "whereby-writer",
        "AWS_WHEREBY_ACCESS_KEY_SECRET": "whereby-writer-secret",
        "AWS_PROCESS_RECORDING_QUEUE_URL": bucket.queue_url,
        "SQS_POLLING_TIMEOUT_SECONDS": "1",
        "REDIS_URL": redis_broker,
        "WHEREBY_SANDBOX_PORT": str(sandbox_port),
        "LOG_LEVEL": "WARNING",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    worker = subprocess.Popen(
        [reflector_bin(), "worker", "--queues", "audio,default"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(logs / "worker.log").open("w"),
    )
    served = start_serve(tmp_path, env, stderr=(logs / "serve.log").open("w"))
    try:
        base, sandbox = served.base, f"http://127.0.0.1:{sandbox_port}"
        auth = {"Authorization": f"Bearer {served.token}"}
        assert "embedded worker" not in (logs / "serve.log").read_text()

        httpx.post(f"{base}/v1/rooms", json={"name": "full-path"}, headers=auth).raise_for_status()
        meeting = httpx.post(f"{base}/v1/rooms/full-path/meeting", headers=auth, timeout=30)
        meeting.raise_for_status()
        control = f"{sandbox}/_sandbox/meetings/{meeting.json()['platform_meeting_id']}"
        people = [
            httpx.post(f"{control}/participants", json={"displayName": name}).json()
            for name in ("Ann", "Bob")
        ]
        for person in people:
            httpx.delete(f"{control}/participants/{person['participantId']}")
        assert httpx.get(f"{sandbox}/_sandbox/wait", params={"timeout": 30}).status_code == 200
        [written] = httpx.get(f"{sandbox}/_sandbox/recordings").json()["recordings"]
        assert written["location"].startswith(f"s3://{bucket.bucket}/raw/")

        def done() -> dict[str, Any] | None:
            items = httpx.get(f"{base}/v1/recordings", headers=auth).json()["items"]
            finished = [r for r in items if r["status"] in ("completed", "failed")]
            return finished[0] if finished else None

        recording = wait_for(done, within=90)
        assert recording, (logs / "worker.log").read_text()[-3000:]
        assert recording["status"] == "completed", recording
        assert recording["key"] == written["key"]
        assert recording["bucket"] == bucket.bucket
        assert recording["meeting_id"] == meeting.json()["id"]
        assert recording["duration"] == pytest.approx(24.7, abs=0.5)
        # Announced by SQS and by recording.finished: still one recording.
        both = wait_for(
            lambda: (
                httpx.get(f"{base}/v1/recordings/{recording['id']}", headers=auth).json()[
                    "announcements"
                ]
                >= 2
            ),
            within=30,
        )
        assert both
        assert len(httpx.get(f"{base}/v1/recordings", headers=auth).json()["items"]) == 1
        # The notification was deleted once stored and enqueued.
        assert wait_for(lambda: bucket.counts() == (0, 0), within=30)
    finally:
        worker.terminate()
        served.stop()
        worker.wait(timeout=15)
