"""The Celery app, built from Settings: broker choice, reliability options and task routing.

Broker: CELERY_BROKER_URL, else REDIS_URL, else the embedded queue in DATA_DIR/jobs.sqlite3
(see `sqlite_transport`). No result backend: tasks record their outcome in our own database.

What happens to a job whose worker is killed mid-run (SIGKILL, OOM, machine lost), measured
with Celery/kombu 5.7 (tests/jobs/test_workers.py):

- Redis: the message waits in kombu's `unacked` hash. Nothing notices the dead worker, and its
  dropped connection does not return the message (only a clean shutdown does). It goes back
  to its queue once it is JOB_VISIBILITY_TIMEOUT_SECONDS old, at the next sweep of any running
  worker (at its start, then every `unacked_restore_interval`, here a quarter of the timeout,
  at most 60 s). So the job runs again one visibility timeout after it was taken, however soon
  a worker restarts (timeout 3 s: again after 3.5 s; 8 s: after 8.5 s; 60 s: not within 6 s
  of a restart). A job running longer than the timeout is handed out a second time while it
  still runs, hence the long default (6 h).
- Embedded SQLite queue: the message is freed as soon as any worker polls after its holder
  died: the job ran again 0.4 s after a replacement worker was started.
- A prefork pool process that dies while its worker lives: the worker requeues the job
  (task_reject_on_worker_lost) after worker_lost_wait, on either broker.

Pick-up latency of an idle worker: Redis about 2 ms; the embedded queue polls every
SQLITE_POLL_SECONDS, median 0.25 s, at most 0.5 s; back-to-back jobs run about 7 ms apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any

from celery import Celery  # type: ignore[import-untyped]
from kombu import Queue  # type: ignore[attr-defined]

from reflector.jobs import sqlite_transport
from reflector.settings import Settings

DEFAULT_QUEUE = "default"
# Pipeline stages with their own queue, so hosts can take only the work they are built for
# (`reflector worker --queues asr,diarize` on a GPU host).
QUEUES: tuple[str, ...] = (DEFAULT_QUEUE, "audio", "asr", "diarize", "llm")

# Task name (or fnmatch pattern) -> queue: the one place routing is decided. Tasks matching
# nothing go to DEFAULT_QUEUE.
TASK_QUEUES: dict[str, str] = {
    "reflector.audio.*": "audio",
    "reflector.asr.*": "asr",
    "reflector.diarize.*": "diarize",
    "reflector.llm.*": "llm",
}

# Modules that define tasks; a worker imports them at start.
TASK_MODULES: tuple[str, ...] = ("reflector.jobs.tasks",)

# How often the embedded queue is polled for new jobs, in seconds (the pick-up latency).
SQLITE_POLL_SECONDS = 0.5


def queue_for(task: str) -> str:
    for pattern, queue in TASK_QUEUES.items():
        if fnmatchcase(task, pattern):
            return queue
    return DEFAULT_QUEUE


def _route(name: str, *_args: Any, **_kwargs: Any) -> dict[str, str]:
    return {"queue": queue_for(name)}


def broker_url(settings: Settings) -> str:
    url = settings.CELERY_BROKER_URL or settings.REDIS_URL
    if url is None:
        path = (settings.DATA_DIR / "jobs.sqlite3").resolve()
        return f"{sqlite_transport.ALIAS}+sqlite:///{path}"
    for stock in ("sqla+sqlite:", "sqlalchemy+sqlite:"):
        # kombu's own SQLite transport loses jobs of killed workers; ours does not.
        if url.startswith(stock):
            return f"{sqlite_transport.ALIAS}+{url.split('+', 1)[1]}"
    return url


def is_embedded(url: str) -> bool:
    return url.startswith(f"{sqlite_transport.ALIAS}+")


def _transport_options(settings: Settings, url: str) -> dict[str, Any]:
    if is_embedded(url):
        return {"polling_interval": SQLITE_POLL_SECONDS}
    if url.startswith(("redis://", "rediss://", "redis+socket://")):
        visibility = settings.JOB_VISIBILITY_TIMEOUT_SECONDS
        return {
            "visibility_timeout": visibility,
            # kombu sweeps for expired unacked messages only every 10 x 10 s by default; with
            # a throttle of 1 the interval alone decides, so a short visibility timeout (tests,
            # short jobs) is honoured closely. The sweep is one ZRANGE under a mutex.
            "unacked_restore_interval": max(1, min(60, visibility // 4)),
            "unacked_restore_throttle": 1,
        }
    return {}


def create_celery_app(settings: Settings, *, include: Sequence[str] = TASK_MODULES) -> Celery:
    """A Celery app for these settings; `include` names the task modules a worker imports."""
    url = broker_url(settings)
    app = Celery("reflector", broker=url, include=list(include))
    app.conf.update(
        broker_transport_options=_transport_options(settings, url),
        broker_connection_retry_on_startup=True,
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        timezone="UTC",
        enable_utc=True,
        # A job is acknowledged when it ends, not when it starts, so a worker that dies
        # mid-job leaves it to be handed out again.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # How long a worker waits for the last word of a pool process that died before it
        # requeues the job (default 10 s). We keep no results, so there is little to wait for.
        worker_lost_wait=2.0,
        # One job at a time per process: a long job never holds others hostage in a buffer.
        worker_prefetch_multiplier=1,
        task_default_queue=DEFAULT_QUEUE,
        task_queues=[Queue(name, routing_key=name) for name in QUEUES],  # type: ignore[no-untyped-call]
        task_create_missing_queues=True,
        task_routes=(_route,),
    )
    return app
