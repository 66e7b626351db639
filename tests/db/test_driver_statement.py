"""DriverStatement sends what SQLAlchemy would send, and fails the way SQLAlchemy fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import JSON, Integer, bindparam, literal, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db.base import UTCDateTime
from reflector.db.driver_statement import DriverStatement
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
    async with postgres.connect() as conn:
        raw = await statement.fetchrow(conn, params)
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


async def test_a_database_error_is_a_sqlalchemy_error_and_the_connection_lives_on(
    postgres: AsyncEngine,
) -> None:
    failing = DriverStatement.compile(select(bindparam("n", type_=Integer()) / 0), postgres.dialect)
    async with postgres.connect() as conn:
        with pytest.raises(DBAPIError, match="division by zero"):
            await failing.fetchrow(conn, {"n": 1})
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1


async def test_a_dropped_connection_is_not_handed_out_again(postgres: AsyncEngine) -> None:
    statement = DriverStatement.compile(_STATEMENT, postgres.dialect)
    params = {"at": datetime.now(UTC), "doc": None, "n": 1}
    async with postgres.connect() as conn:
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
        await conn.commit()
    killer = create_engine(str(postgres.url.render_as_string(hide_password=False)))
    try:
        async with killer.connect() as other:
            await other.execute(text(f"SELECT pg_terminate_backend({int(pid or 0)})"))
    finally:
        await killer.dispose()
    async with postgres.connect() as conn:
        with pytest.raises(DBAPIError):
            await statement.fetchrow(conn, params)
    # The only pooled connection was the dead one: the next request gets a fresh one.
    async with postgres.connect() as conn:
        row = await statement.fetchrow(conn, params)
        assert row["n"] == 1
