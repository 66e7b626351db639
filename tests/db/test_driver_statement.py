"""DriverStatement sends what SQLAlchemy would send, and fails the way SQLAlchemy fails."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import JSON, Integer, bindparam, literal, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db.base import UTCDateTime
from reflector.db.driver_statement import DriverStatement, on_driver_connection
from reflector.db.engine import create_engine

_STATEMENT = select(
    bindparam("at", type_=UTCDateTime()).label("at"),
    bindparam("doc", type_=JSON()).label("doc"),
    bindparam("n", type_=Integer()).label("n"),
    literal(7).label("constant"),
)


@pytest.fixture
async def postgres(postgres_url: str) -> AsyncEngine:
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    yield engine  # type: ignore[misc]
    await engine.dispose()


async def test_it_sends_the_values_sqlalchemy_would(postgres: AsyncEngine) -> None:
    statement = DriverStatement.compile(_STATEMENT, postgres.dialect)
    # Not UTC on the way in: the column type's own conversion must run.
    at = datetime(2026, 11, 28, 21, 0, tzinfo=timezone(timedelta(hours=2)))
    params = {"at": at, "doc": {"visitor": 2, "host": None}, "n": 3}
    raw = await on_driver_connection(postgres, lambda driver: statement.fetchrow(driver, params))
    async with postgres.connect() as conn:
        expected = (await conn.execute(_STATEMENT, params)).one()
    assert raw["at"] == expected.at == at
    assert raw["at"].utcoffset() == timedelta(0)
    # Encoded once, by the connection's JSON codec, as on the Core path (not a JSON string).
    assert raw["doc"] == expected.doc == {"visitor": 2, "host": None}
    assert (raw["n"], raw["constant"]) == (3, 7) == (expected.n, expected.constant)


async def test_a_naive_datetime_is_refused_as_on_the_core_path(postgres: AsyncEngine) -> None:
    statement = DriverStatement.compile(_STATEMENT, postgres.dialect)
    with pytest.raises(ValueError, match="naive datetime"):
        statement.arguments({"at": datetime(2026, 11, 28), "doc": None, "n": 1})


async def _backend_pid(engine: AsyncEngine) -> int:
    pid: int = await on_driver_connection(
        engine, lambda driver: driver.fetchval("SELECT pg_backend_pid()")
    )
    return pid


async def test_a_database_error_is_a_sqlalchemy_error_and_the_connection_lives_on(
    postgres: AsyncEngine,
) -> None:
    failing = DriverStatement.compile(select(bindparam("n", type_=Integer()) / 0), postgres.dialect)
    before = await _backend_pid(postgres)
    with pytest.raises(DBAPIError, match="division by zero"):
        await on_driver_connection(postgres, lambda driver: failing.fetchrow(driver, {"n": 1}))
    assert await _backend_pid(postgres) == before


async def test_a_dropped_connection_is_not_handed_out_again(postgres: AsyncEngine) -> None:
    statement = DriverStatement.compile(_STATEMENT, postgres.dialect)
    params = {"at": datetime.now(UTC), "doc": None, "n": 1}
    pid = await _backend_pid(postgres)
    killer = create_engine(str(postgres.url.render_as_string(hide_password=False)))
    try:
        async with killer.connect() as other:
            await other.execute(text(f"SELECT pg_terminate_backend({pid})"))
    finally:
        await killer.dispose()
    with pytest.raises(DBAPIError):
        await on_driver_connection(postgres, lambda driver: statement.fetchrow(driver, params))
    # The only pooled connection was the dead one: the next request gets a fresh one.
    row = await on_driver_connection(postgres, lambda driver: statement.fetchrow(driver, params))
    assert row["n"] == 1
    assert await _backend_pid(postgres) != pid


async def test_a_request_cancelled_mid_statement_leaves_its_connection_usable(
    postgres: AsyncEngine,
) -> None:
    pid = await _backend_pid(postgres)
    slow = asyncio.ensure_future(
        on_driver_connection(postgres, lambda driver: driver.execute("SELECT pg_sleep(5)"))
    )
    await asyncio.sleep(0.3)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    # asyncpg cancels the statement on the server; the one pooled connection serves on.
    assert await asyncio.wait_for(_backend_pid(postgres), timeout=2) == pid
