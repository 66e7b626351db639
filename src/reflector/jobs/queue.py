"""The seam the rest of the code enqueues jobs through."""

from __future__ import annotations

from typing import Protocol

from celery import Celery  # type: ignore[import-untyped]

from reflector.jobs.celery_app import queue_for


class JobQueue(Protocol):
    def enqueue(self, task: str, *args: str, queue: str | None = None) -> str:
        """Queue the task named `task` with `args`; returns the job id.

        `queue` overrides the routing table (celery_app.TASK_QUEUES). The message is stored by
        the broker when this returns, so call it after the commit that the job will read."""
        ...


class CeleryJobQueue:
    """JobQueue on a Celery app. Sending blocks briefly on the broker (a Redis round trip, or a
    SQLite write); from async code call it through `asyncio.to_thread` when that matters."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def enqueue(self, task: str, *args: str, queue: str | None = None) -> str:
        result = self._app.send_task(task, args=list(args), queue=queue or queue_for(task))
        return str(result.id)
