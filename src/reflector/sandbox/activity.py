"""Counts background work (webhook deliveries, recordings being encoded) so callers can wait
until the sandbox has nothing left to do."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Activity:
    def __init__(self) -> None:
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> int:
        return self._busy

    def begin(self) -> None:
        self._busy += 1
        self._idle.clear()

    def end(self) -> None:
        self._busy = max(0, self._busy - 1)
        if self._busy == 0:
            self._idle.set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `work` in the background, counted as busy until it finishes."""
        self.begin()
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            self.end()

        task.add_done_callback(done)
        return task

    async def wait_idle(self, within: float) -> bool:
        """True once nothing is pending; False when `within` seconds pass first."""
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def clear(self) -> None:
        """Forget pending work after it was cancelled."""
        self._busy = 0
        self._idle.set()
