"""Jobs through real workers on both brokers: durability, routing, a killed worker's job."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from celery import Celery  # type: ignore[import-untyped]

from reflector.jobs.celery_app import create_celery_app
from reflector.jobs.queue import CeleryJobQueue, JobQueue
from reflector.jobs.worker import EmbeddedWorker
from reflector.settings import Settings
from tests.conftest import make_settings
from tests.jobs.conftest import REPO_ROOT, TASKS, VISIBILITY_TIMEOUT, Workers, wait_for
from tests.jobs.tasks import RECORD, THEN_RECORD, attempts


def finished(out: Path, label: str) -> list[tuple[str, int, float]]:
    """The attempts at job `label` once one has finished; empty before."""
    rows = attempts(out, label)
    return rows if any(event == "done" for event, _, _ in rows) else []


def stored_jobs(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "data" / "jobs.sqlite3") as db:
        (count,) = db.execute("SELECT count(*) FROM reflector_jobs").fetchone()
    return int(count)


def waiting(app: Celery, queue: str) -> int:
    """Messages ready in `queue` (taken ones not counted)."""
    with app.connection_for_write() as connection:
        declared = connection.default_channel.queue_declare(queue)
        return int(declared.message_count)


def test_job_queued_before_any_worker_runs_and_is_routed(
    celery_app: Celery, workers: Workers, tmp_path: Path
) -> None:
    jobs: JobQueue = CeleryJobQueue(celery_app)
    out = tmp_path / "out.txt"
    jobs.enqueue(RECORD, str(out), "audio-job", queue="audio")
    job_id = jobs.enqueue(RECORD, str(out), "asr-job", queue="asr")
    assert job_id
    # The routing table, as a producer applies it with no queue given.
    jobs.enqueue("reflector.llm.summarize", "tr_1")
    jobs.enqueue("reflector.something_else", "tr_1")
    assert waiting(celery_app, "llm") == 1
    assert waiting(celery_app, "default") == 1

    workers.start(["asr"])
    wait_for(lambda: finished(out, "asr-job"), 30, "the asr job", tmp_path)
    # The asr-only worker polled past the audio job, which still waits for an audio worker.
    assert attempts(out, "audio-job") == []
    assert waiting(celery_app, "audio") == 1
    assert waiting(celery_app, "asr") == 0


def test_job_of_a_killed_worker_runs_again(
    broker: str, celery_app: Celery, workers: Workers, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    CeleryJobQueue(celery_app).enqueue(RECORD, str(out), "long", "600")
    first = workers.start()
    wait_for(lambda: attempts(out, "long"), 30, "the first attempt", tmp_path)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = time.time()

    workers.start()
    rows = wait_for(lambda: finished(out, "long"), 30, "the second attempt", tmp_path)
    (_, pid1, started1), (_, pid2, started2), (event, pid3, _) = rows
    assert (event, pid3) == ("done", pid2)
    assert pid1 != pid2
    if broker == "redis":
        # Redis knows nothing of the dead worker: the job waits out the visibility timeout,
        # counted from when the first worker took it.
        assert started2 - started1 >= VISIBILITY_TIMEOUT - 0.5
    else:
        # The embedded queue hands it back as soon as the new worker polls, and forgets it
        # once it is done.
        assert started2 - killed_at < 10
        wait_for(lambda: stored_jobs(tmp_path) == 0, 10, "the acknowledged job to be deleted")


def test_job_of_a_killed_pool_process_runs_again_at_once(
    job_settings: Settings, celery_app: Celery, tmp_path: Path
) -> None:
    # A visibility timeout far beyond the test, so only the worker's requeue can explain a
    # second attempt.
    settings = job_settings.model_copy(update={"JOB_VISIBILITY_TIMEOUT_SECONDS": 3600})
    workers = Workers(settings, tmp_path)
    try:
        out = tmp_path / "out.txt"
        CeleryJobQueue(celery_app).enqueue(RECORD, str(out), "long", "600")
        workers.start(concurrency=2)
        ((_, child, _),) = wait_for(lambda: attempts(out, "long"), 30, "a pool process", tmp_path)
        os.kill(child, signal.SIGKILL)
        rows = wait_for(lambda: finished(out, "long"), 30, "the second attempt", tmp_path)
        # The worker saw its pool process die and requeued the job (task_reject_on_worker_lost
        # and worker_lost_wait).
        assert rows[1][1] != child
    finally:
        workers.close()


def test_a_job_in_a_pool_process_enqueues_the_next(
    celery_app: Celery, workers: Workers, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    workers.start(concurrency=2)
    for n in range(3):
        CeleryJobQueue(celery_app).enqueue(THEN_RECORD, str(out), f"next-{n}")
    for n in range(3):
        wait_for(lambda n=n: finished(out, f"next-{n}"), 30, f"job next-{n}", tmp_path)


def test_embedded_worker_starts_restarts_and_stops(
    job_settings: Settings, celery_app: Celery, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    jobs = CeleryJobQueue(celery_app)
    worker = EmbeddedWorker(
        job_settings,
        include=[TASKS],
        restart_delay=0.1,
        stop_timeout=20,
        env={"PYTHONPATH": str(REPO_ROOT)},
    )
    with worker:
        first = worker.pid
        assert first is not None
        jobs.enqueue(RECORD, str(out), "one")
        wait_for(lambda: finished(out, "one"), 30, "the first job")
        assert attempts(out, "one")[0][1] == first

        os.kill(first, signal.SIGKILL)
        second = wait_for(lambda: worker.pid not in (None, first) and worker.pid, 30, "restart")
        assert worker.restarts == 1
        jobs.enqueue(RECORD, str(out), "two")
        wait_for(lambda: finished(out, "two"), 30, "the job after the restart")
        assert attempts(out, "two")[0][1] == second

        began = time.monotonic()
    # An idle worker stops on SIGTERM at once, not after stop_timeout, and is not restarted.
    assert time.monotonic() - began < 10
    assert worker.pid is None
    assert worker.restarts == 1
    assert not _alive(second)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stopping_a_busy_embedded_worker_kills_it_and_the_job_resumes_at_next_start(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, LOG_LEVEL="WARNING")
    app = create_celery_app(settings)
    out = tmp_path / "out.txt"
    options: dict[str, Any] = {
        "include": [TASKS],
        "stop_timeout": 1.0,
        "env": {"PYTHONPATH": str(REPO_ROOT)},
    }
    try:
        CeleryJobQueue(app).enqueue(RECORD, str(out), "long", "600")
        with EmbeddedWorker(settings, **options):
            wait_for(lambda: attempts(out, "long"), 30, "the first attempt", tmp_path)
            began = time.monotonic()
        # The job would have run for ten minutes: the worker was killed after stop_timeout.
        assert time.monotonic() - began < 10
        with EmbeddedWorker(settings, **options):
            rows = wait_for(lambda: finished(out, "long"), 30, "the second attempt", tmp_path)
        assert [event for event, _, _ in rows] == ["start", "start", "done"]
    finally:
        app.close()
