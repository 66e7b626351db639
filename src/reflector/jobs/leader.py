"""Work that must run once per deployment, not once per worker or replica: whoever holds a
named lease in our database runs it; the others wait and take over when the lease runs out.

The lease is one row, `leases(name, holder, expires_at)`, taken or renewed with a single
INSERT ... ON CONFLICT DO UPDATE ... WHERE (expired or already mine) ... RETURNING, so two
contenders can never both believe they hold it. On PostgreSQL the database's clock decides
expiry (replicas on several hosts need not agree on the time); SQLite is one machine's file,
so the local clock is the database's clock.

A holder renews every ttl/3 seconds, also while its work runs; when a renewal fails (someone
else holds the lease: this process stalled past the TTL) the running work is cancelled. A
holder that dies is replaced within `ttl` seconds; one that stops cleanly releases the lease
so another takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reflector.db.base import utcnow
from reflector.db.upsert import insert_for
from reflector.jobs.models import Lease
from reflector.logs import get_logger

_log = get_logger("reflector.jobs.leader")


def default_holder() -> str:
    """A name for this process as a lease holder: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def _now(session: AsyncSession) -> datetime:
    if session.get_bind().dialect.name == "postgresql":
        now = await session.scalar(text("SELECT clock_timestamp()"))
        assert isinstance(now, datetime)
        return now
    return utcnow()


async def acquire(
    factory: async_sessionmaker[AsyncSession], name: str, holder: str, ttl: float
) -> bool:
    """Take the lease `name` for `holder`, or renew it, for `ttl` seconds; True when held."""
    async with factory() as session:
        dialect = session.get_bind().dialect.name
        now = await _now(session)
        statement = insert_for(dialect, Lease.__table__).values(
            name=name, holder=holder, expires_at=now + timedelta(seconds=ttl)
        )
        statement = statement.on_conflict_do_update(
            index_elements=[Lease.name],
            set_={"holder": statement.excluded.holder, "expires_at": statement.excluded.expires_at},
            where=(Lease.expires_at < now) | (Lease.holder == holder),
        ).returning(Lease.holder)
        taken = (await session.execute(statement)).scalar_one_or_none()
        await session.commit()
        return bool(taken == holder)


async def release(factory: async_sessionmaker[AsyncSession], name: str, holder: str) -> None:
    """Give up the lease if `holder` has it, so another contender takes over at once."""
    async with factory() as session:
        await session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))
        await session.commit()


async def current_holder(factory: async_sessionmaker[AsyncSession], name: str) -> str | None:
    """Who holds the lease now (None when nobody does or it has run out)."""
    async with factory() as session:
        now = await _now(session)
        return await session.scalar(
            select(Lease.holder).where(Lease.name == name, Lease.expires_at >= now)
        )


async def _still_held(
    factory: async_sessionmaker[AsyncSession], name: str, holder: str, ttl: float
) -> bool:
    try:
        return await acquire(factory, name, holder, ttl)
    except Exception as exc:
        # Unable to confirm the lease is unable to hold it: never run unconfirmed.
        _log.warning("lease renewal failed", lease=name, error=str(exc))
        return False


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))


class Failures:
    """Failures of one lease's work in a row: the back-off before its next run, and logs
    that give the traceback once, not at every retry."""

    def __init__(self, lease: str, first: float, most: float) -> None:
        self.lease = lease
        self.first = first
        self.most = most
        self.count = 0

    def failed(self, exc: Exception) -> None:
        self.count += 1
        if self.count == 1:
            _log.error("leader work failed", lease=self.lease, exc_info=exc)
        else:
            _log.warning(
                "leader work failed again",
                lease=self.lease,
                failures_in_a_row=self.count,
                error=f"{type(exc).__name__}: {exc}",
                next_try_in_seconds=round(self.delay(), 1),
            )

    def succeeded(self) -> None:
        if self.count:
            _log.info("leader work recovered", lease=self.lease, after_failures=self.count)
        self.count = 0

    def delay(self) -> float:
        """Seconds to wait before the next run (0 when the last run succeeded)."""
        if not self.count:
            return 0.0
        return float(min(self.most, self.first * 2 ** (self.count - 1)))


async def run_while_leader(
    factory: async_sessionmaker[AsyncSession],
    name: str,
    holder: str,
    ttl: float,
    work: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    *,
    interval: float | None = None,
    backoff_first: float = 1.0,
    backoff_max: float = 60.0,
) -> None:
    """Run `work` every `interval` seconds (default ttl/3) while `holder` holds the lease
    `name`; return, releasing the lease, once `stop` is set. A failing `work` is logged and
    run again after a back-off that doubles with each failure in a row (from `backoff_first`
    to `backoff_max` seconds, never sooner than the interval): work that runs back to back
    (interval 0, the SQS poll) must not spin against a queue or bucket that keeps refusing.

    Example, in the app's lifespan::

        stop = asyncio.Event()
        task = asyncio.create_task(run_while_leader(
            factory, "meeting-lifecycle", default_holder(), ttl=30,
            work=one_pass, stop=stop, interval=settings.MEETING_LIFECYCLE_INTERVAL_SECONDS))
        ...
        stop.set(); await task
    """
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    loop = asyncio.get_running_loop()
    renew_every = ttl / 3
    every = renew_every if interval is None else interval
    next_run = loop.time()
    held = False
    failures = Failures(name, backoff_first, backoff_max)
    try:
        while not stop.is_set():
            was_held, held = held, await _still_held(factory, name, holder, ttl)
            if held != was_held:
                _log.info("lease taken" if held else "lease lost", lease=name, holder=holder)
            if held and loop.time() >= next_run:
                held = await _work_while_held(factory, name, holder, ttl, work, failures)
                next_run = loop.time() + max(every, failures.delay())
                continue
            wait = min(renew_every, next_run - loop.time()) if held else renew_every
            await _wait(stop, wait)
    finally:
        if held:
            with contextlib.suppress(Exception):
                await release(factory, name, holder)


async def _work_while_held(
    factory: async_sessionmaker[AsyncSession],
    name: str,
    holder: str,
    ttl: float,
    work: Callable[[], Awaitable[None]],
    failures: Failures,
) -> bool:
    """Run one pass of `work`, renewing the lease meanwhile; False when the lease was lost."""

    async def guarded() -> None:
        try:
            await work()
        except Exception as exc:
            failures.failed(exc)
        else:
            failures.succeeded()

    task = asyncio.create_task(guarded())
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=ttl / 3)
            if done:
                return True
            if not await _still_held(factory, name, holder, ttl):
                _log.warning("lease lost during work; cancelling it", lease=name, holder=holder)
                return False
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
