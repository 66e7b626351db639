"""The connection pool serves waiting requests in arrival order, on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from reflector.db.engine import create_engine
from reflector.db.fair_pool import FairAsyncQueuePool
from tests.conftest import Database


def _one_connection(database: Database, **kwargs: object) -> AsyncEngine:
    return create_engine(database.url, pool_size=1, max_overflow=0, **kwargs)


async def _until_waiting(engine: AsyncEngine, count: int) -> None:
    queue = engine.pool._pool  # type: ignore[attr-defined]
    for _ in range(500):
        if sum(not w.done() for w in getattr(queue, "_waiters", ())) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} requests never queued for the connection")


async def _arrival_order(engine: AsyncEngine, settle: Awaitable[None]) -> list[str]:
    """A holds the only connection while W1..W3 queue for it; A then returns it and asks
    again at once. Returns the order in which the connection was obtained."""
    order: list[str] = []
    holding = asyncio.Event()

    async def waiter(name: str) -> None:
        async with engine.connect() as conn:
            order.append(name)
            await conn.execute(text("SELECT 1"))

    async def holder() -> None:
        conn = await engine.connect()
        await conn.execute(text("SELECT 1"))
        holding.set()
        await settle
        await conn.close()
        async with engine.connect() as again:
            order.append("A again")
            await again.execute(text("SELECT 1"))

    first = asyncio.ensure_future(holder())
    await holding.wait()
    waiters = []
    for name in ("W1", "W2", "W3"):
        waiters.append(asyncio.ensure_future(waiter(name)))
        await asyncio.sleep(0.02)
    await asyncio.gather(first, *waiters)
    return order


async def test_a_returned_connection_goes_to_the_oldest_waiter(database: Database) -> None:
    engine = _one_connection(database)
    assert isinstance(engine.pool, FairAsyncQueuePool)
    try:
        settle = asyncio.ensure_future(_until_waiting(engine, 3))
        order = await _arrival_order(engine, settle)
    finally:
        await engine.dispose()
    assert order == ["W1", "W2", "W3", "A again"]


async def test_the_unfair_pool_lets_a_newcomer_overtake(database: Database) -> None:
    """The failure the fair pool exists for, shown on SQLAlchemy's own pool: without it the
    test above would fail."""
    engine = _one_connection(database, poolclass=AsyncAdaptedQueuePool)
    try:
        order = await _arrival_order(engine, asyncio.sleep(0.2))
    finally:
        await engine.dispose()
    assert order[0] == "A again"


async def test_a_wait_past_the_pool_timeout_fails_and_loses_nothing(database: Database) -> None:
    engine = _one_connection(database, pool_timeout=0.2)
    try:
        held = await engine.connect()
        with pytest.raises(exc.TimeoutError, match="QueuePool limit"):
            await engine.connect()
        await held.close()
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_a_connection_handed_to_a_cancelled_waiter_passes_to_the_next(
    database: Database,
) -> None:
    engine = _one_connection(database, pool_timeout=5)
    try:
        held = await engine.connect()
        got: list[str] = []

        async def waiter(name: str) -> None:
            async with engine.connect() as conn:
                got.append(name)
                await conn.execute(text("SELECT 1"))

        first = asyncio.ensure_future(waiter("first"))
        await _until_waiting(engine, 1)
        second = asyncio.ensure_future(waiter("second"))
        await _until_waiting(engine, 2)
        # Returned (and so handed to `first`), then `first` gives up before it runs.
        await held.close()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, 5)
        assert got == ["second"]
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
