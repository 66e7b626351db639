"""Tasks for the job-engine tests; workers import this module with --include."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import shared_task  # type: ignore[import-untyped]

RECORD = "tests.jobs.record"


def attempts(path: Path, label: str) -> list[tuple[str, int, float]]:
    """(event, pid, time) for each line the task wrote about `label`."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        name, event, pid, at = line.split()
        if name == label:
            rows.append((event, int(pid), float(at)))
    return rows


@shared_task(name=RECORD)
def record(path: str, label: str, hold_first: str = "0") -> None:
    """Note the start and the end of each attempt; the first attempt waits `hold_first` s."""
    file = Path(path)
    first = not any(event == "start" for event, _, _ in attempts(file, label))
    _write(file, label, "start")
    if first:
        time.sleep(float(hold_first))
    _write(file, label, "done")


def _write(path: Path, label: str, event: str) -> None:
    with path.open("a") as out:
        out.write(f"{label} {event} {os.getpid()} {time.time()}\n")


THEN_RECORD = "tests.jobs.then_record"


@shared_task(name=THEN_RECORD, bind=True)
def then_record(self: Any, path: str, label: str) -> None:
    """Enqueue `record` from inside a job, as one pipeline step queues the next."""
    self.app.send_task(RECORD, args=[path, label])
