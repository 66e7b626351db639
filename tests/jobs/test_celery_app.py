from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from reflector.jobs.celery_app import (
    DEFAULT_QUEUE,
    QUEUES,
    broker_url,
    create_celery_app,
    is_embedded,
    queue_for,
)
from reflector.jobs.worker import run_worker, settings_environment
from reflector.settings import load_settings
from tests.conftest import make_settings
from tests.jobs.conftest import wait_for, worker_env


def test_broker_choice(tmp_path: Path) -> None:
    embedded = broker_url(make_settings(tmp_path))
    assert embedded == f"reflector-sqla+sqlite:///{(tmp_path / 'data' / 'jobs.sqlite3').resolve()}"
    assert is_embedded(embedded)
    redis = make_settings(tmp_path, REDIS_URL="redis://127.0.0.1:6379/3")
    assert broker_url(redis) == "redis://127.0.0.1:6379/3"
    both = make_settings(
        tmp_path, REDIS_URL="redis://127.0.0.1:6379/3", CELERY_BROKER_URL="redis://h:6379/1"
    )
    assert broker_url(both) == "redis://h:6379/1"
    stock = make_settings(tmp_path, CELERY_BROKER_URL="sqla+sqlite:////srv/q.db")
    assert broker_url(stock) == "reflector-sqla+sqlite:////srv/q.db"
    assert make_settings(tmp_path, CELERY_BROKER_URL="").CELERY_BROKER_URL is None


def test_reliability_options(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:6379/14", JOB_VISIBILITY_TIMEOUT_SECONDS=600
    )
    conf = create_celery_app(settings).conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_ignore_result is True
    assert conf.task_serializer == "json"
    assert conf.enable_utc is True
    assert conf.timezone == "UTC"
    assert conf.broker_transport_options["visibility_timeout"] == 600
    assert [queue.name for queue in conf.task_queues] == list(QUEUES)
    assert make_settings(tmp_path).JOB_VISIBILITY_TIMEOUT_SECONDS == 6 * 3600


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("reflector.audio.decode", "audio"),
        ("reflector.asr.transcribe", "asr"),
        ("reflector.diarize.turns", "diarize"),
        ("reflector.llm.summarize", "llm"),
        ("reflector.process_recording", DEFAULT_QUEUE),
        ("reflector.asrx", DEFAULT_QUEUE),
    ],
)
def test_routing_table(task: str, queue: str) -> None:
    assert queue_for(task) == queue


def test_unknown_queue_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown queue gpu"):
        run_worker(make_settings(tmp_path), ["asr", "gpu"])


def test_settings_environment_reproduces_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        tmp_path,
        WHEREBY_API_KEY=SecretStr("key-1"),
        CELERY_BROKER_URL="redis://127.0.0.1:6379/2",
        JOB_VISIBILITY_TIMEOUT_SECONDS=77,
        WHEREBY_MEETING_DURATION_HOURS=1.5,
    )
    env = settings_environment(settings)
    assert env["WHEREBY_API_KEY"] == "key-1"
    assert "AWS_PROCESS_RECORDING_QUEUE_URL" not in env
    for name in type(settings).model_fields:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings(_env_file=None) == settings


def test_worker_stops_when_its_parent_is_gone(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, LOG_LEVEL="INFO")
    log = tmp_path / "worker.log"
    # A stand-in for `reflector serve`: starts the worker, then dies when told to.
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(log)],
        env=worker_env(settings),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    assert parent.stdin is not None
    child = int(parent.stdout.readline())
    try:
        wait_for(lambda: b"ready" in log.read_bytes(), 30, "the worker to be ready", tmp_path)
        parent.stdin.close()
        parent.wait(10)
        wait_for(lambda: not _running(child), 30, "the orphaned worker to stop", tmp_path)
    finally:
        if _running(child):
            os.kill(child, signal.SIGKILL)
    assert "parent process gone" in log.read_text()


PARENT = """
import os, subprocess, sys
with open(sys.argv[1], "wb") as log:
    child = subprocess.Popen(
        [sys.executable, "-m", "reflector.jobs.worker", "--env-file=",
         f"--exit-with-parent={os.getpid()}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
print(child.pid, flush=True)
sys.stdin.read()
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan may wait a while for its new parent to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_worker_does_not_start_for_a_parent_already_gone(tmp_path: Path) -> None:
    # PID 1 is nobody's parent here: as for a server killed while it started the worker.
    done = subprocess.run(
        [sys.executable, "-m", "reflector.jobs.worker", "--env-file=", "--exit-with-parent=1"],
        env=worker_env(make_settings(tmp_path, LOG_LEVEL="WARNING")),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert b"not starting" in done.stderr
