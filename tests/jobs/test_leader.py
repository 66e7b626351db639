"""The once-per-deployment lease, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from reflector.db.engine import create_session_factory
from reflector.jobs.leader import Failures, acquire, current_holder, run_while_leader
from reflector.jobs.models import Lease

TTL = 0.6
LEASE = "test-lease"


async def until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.02)


class Contender:
    """One replica running the periodic work while it leads."""

    def __init__(self, factory: async_sessionmaker[AsyncSession], name: str, runs: list[str]):
        self.name = name
        self.stop = asyncio.Event()

        async def work() -> None:
            runs.append(name)

        self.task = asyncio.create_task(
            run_while_leader(factory, LEASE, name, TTL, work, self.stop, interval=0.05)
        )

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


async def test_one_of_two_contenders_runs_and_the_other_takes_over(engine: AsyncEngine) -> None:
    factory = create_session_factory(engine)
    runs: list[str] = []
    a, b = Contender(factory, "a", runs), Contender(factory, "b", runs)
    try:
        await until(lambda: len(runs) >= 10, 10, "ten runs")
        # Renewals happen every TTL/3 meanwhile: the same replica kept the lease throughout.
        await until(lambda: len(runs) >= 10 + int(TTL / 0.05), 10, "runs over a whole TTL")
        (leader,) = set(runs)
        assert await current_holder(factory, LEASE) == leader
        first, second = (a, b) if leader == "a" else (b, a)
        await first.close()
        # It released the lease on stopping: the other takes over without waiting for expiry.
        handed_over = len(runs)
        await until(lambda: second.name in runs[handed_over:], 10, "the take-over")
        assert set(runs[handed_over:]) == {second.name}
    finally:
        await a.close()
        await b.close()
    assert await current_holder(factory, LEASE) is None


async def test_a_holder_that_stops_renewing_is_replaced_after_the_ttl(engine: AsyncEngine) -> None:
    factory = create_session_factory(engine)
    # A replica that took the lease and then died without releasing it.
    assert await acquire(factory, LEASE, "dead", TTL)
    assert not await acquire(factory, LEASE, "other", TTL)
    runs: list[str] = []
    loop = asyncio.get_running_loop()
    began = loop.time()
    survivor = Contender(factory, "survivor", runs)
    try:
        await until(lambda: bool(runs), 10, "the survivor to run")
    finally:
        await survivor.close()
    assert loop.time() - began >= TTL * 0.5
    assert set(runs) == {"survivor"}


async def test_work_is_cancelled_when_the_lease_is_lost(engine: AsyncEngine) -> None:
    factory = create_session_factory(engine)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def long_work() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    stop = asyncio.Event()
    task = asyncio.create_task(run_while_leader(factory, LEASE, "slow", TTL, long_work, stop))
    try:
        await asyncio.wait_for(started.wait(), 10)
        # Another replica took the lease (as after this one stalled past its TTL).
        await _set_holder(factory, "thief")
        await asyncio.wait_for(cancelled.wait(), 10)
        assert await current_holder(factory, LEASE) == "thief"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    # Stopping does not release a lease held by someone else.
    assert await current_holder(factory, LEASE) == "thief"


async def _set_holder(factory: async_sessionmaker[AsyncSession], holder: str) -> None:
    async with factory() as session:
        await session.execute(update(Lease).where(Lease.name == LEASE).values(holder=holder))
        await session.commit()


async def test_failing_work_is_retried(engine: AsyncEngine) -> None:
    factory = create_session_factory(engine)
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_while_leader(factory, LEASE, "me", TTL, flaky, stop, interval=0.05)
    )
    try:
        await until(lambda: calls >= 3, 10, "three calls")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_failing_work_backs_off_and_recovers(engine: AsyncEngine) -> None:
    """Work that runs back to back (interval 0, like the SQS poll) and keeps failing is not
    retried in a tight loop: the waits double up to the cap."""
    factory = create_session_factory(engine)
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def flaky() -> None:
        starts.append(loop.time())
        if len(starts) <= 4:
            raise RuntimeError("queue refused")

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_while_leader(
            factory, LEASE, "me", TTL, flaky, stop, interval=0, backoff_first=0.1, backoff_max=0.4
        )
    )
    try:
        await until(lambda: len(starts) >= 8, 20, "eight calls")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # After failures 1-4 the waits are at least 0.1, 0.2, 0.4 (the cap), 0.4 s.
    assert [gap >= wait for gap, wait in zip(gaps, [0.1, 0.2, 0.4, 0.4], strict=False)] == [
        True
    ] * 4


def test_a_success_resets_the_back_off() -> None:
    failures = Failures("test", first=1.0, most=8.0)
    for _ in range(5):
        failures.failed(RuntimeError("down"))
    assert failures.delay() == 8.0
    failures.succeeded()
    assert failures.delay() == 0.0
    failures.failed(RuntimeError("down"))
    assert failures.delay() == 1.0
