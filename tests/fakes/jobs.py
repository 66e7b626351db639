"""A JobQueue fake at the Protocol seam: records what was enqueued, can be made to fail."""

from __future__ import annotations


class RecordingJobQueue:
    def __init__(self) -> None:
        self.enqueued: list[tuple[str, tuple[str, ...], str | None]] = []
        self.fail_next = 0

    def enqueue(self, task: str, *args: str, queue: str | None = None) -> str:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker unreachable")
        self.enqueued.append((task, args, queue))
        return f"job-{len(self.enqueued)}"
