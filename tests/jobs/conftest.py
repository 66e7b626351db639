"""Real Celery workers as subprocesses, on the embedded SQLite queue and on Redis.

Redis is reached at REFLECTOR_TEST_REDIS_URL (default redis://127.0.0.1:6379/14, a database
these tests flush); when it does not answer the Redis cases skip with the reason, except under
CI, where they fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from celery import Celery  # type: ignore[import-untyped]

from reflector.jobs.celery_app import create_celery_app
from reflector.jobs.worker import settings_environment
from reflector.settings import Settings
from tests.conftest import make_settings

REDIS_URL = os.environ.get("REFLECTOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
REPO_ROOT = Path(__file__).resolve().parents[2]
TASKS = "tests.jobs.tasks"
# Short, so that the redelivery of a killed worker's job is seen within the test.
VISIBILITY_TIMEOUT = 3
T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, logs: Path | None = None) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = ""
            if logs is not None:
                detail = "\n".join(
                    f"--- {log.name}\n{log.read_text()[-3000:]}"
                    for log in sorted(logs.glob("*.log"))
                )
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        reason = f"Redis unreachable at {REDIS_URL}: {exc.__class__.__name__}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so Redis tests must run)")
        pytest.skip(reason)
    return REDIS_URL


def _flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture(params=["sqlite", "redis"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The broker kind of a test: the embedded SQLite queue, or Redis."""
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        _flush(url)
        yield "redis"
        _flush(url)
    else:
        yield "sqlite"


@pytest.fixture
def job_settings(broker: str, tmp_path: Path) -> Settings:
    if broker == "redis":
        return make_settings(
            tmp_path,
            CELERY_BROKER_URL=REDIS_URL,
            JOB_VISIBILITY_TIMEOUT_SECONDS=VISIBILITY_TIMEOUT,
            LOG_LEVEL="WARNING",
        )
    return make_settings(tmp_path, LOG_LEVEL="WARNING")


@pytest.fixture
def celery_app(job_settings: Settings) -> Iterator[Celery]:
    app = create_celery_app(job_settings)
    yield app
    app.close()


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in type(settings).model_fields}
    env.update(settings_environment(settings))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


class Workers:
    """Worker subprocesses started by a test; all are killed at its end."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.settings = settings
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(
        self, queues: list[str] | None = None, concurrency: int = 1
    ) -> subprocess.Popen[bytes]:
        command = [
            sys.executable,
            "-m",
            "reflector.jobs.worker",
            f"--include={TASKS}",
            "--env-file=",
            f"--queues={','.join(queues or [])}",
            f"--concurrency={concurrency}",
        ]
        log = (self.logs / f"worker-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            command, env=worker_env(self.settings), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()


@pytest.fixture
def workers(job_settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(job_settings, tmp_path)
    yield started
    started.close()
