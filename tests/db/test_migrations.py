from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db import migrate
from reflector.db.models import Base
from tests.conftest import BACKENDS, Database, postgres_schema


@pytest.fixture(params=BACKENDS)
async def empty_engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        engine = Database("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}").open()
        yield engine
        await engine.dispose()
        return
    url: str = request.getfixturevalue("postgres_url")
    with postgres_schema(url, migrated=False) as database:
        engine = database.open()
        yield engine
        await engine.dispose()


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(_tables)


async def test_round_trip(empty_engine: AsyncEngine) -> None:
    expected = set(Base.metadata.tables)
    await migrate.upgrade(empty_engine)
    assert await tables(empty_engine) == expected
    assert await migrate.current_revision(empty_engine) == migrate.head_revision()
    await migrate.downgrade(empty_engine, "base")
    assert await tables(empty_engine) == set()
    assert await migrate.current_revision(empty_engine) is None
    await migrate.upgrade(empty_engine)
    assert await tables(empty_engine) == expected


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_models_match_the_migrations(empty_engine: AsyncEngine) -> None:
    await migrate.upgrade(empty_engine)
    async with empty_engine.connect() as conn:
        differences = await conn.run_sync(_differences)
    assert differences == [], "models and migrations differ: write a migration"
