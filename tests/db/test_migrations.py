from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db import migrate
from reflector.db.models import Base
from reflector.transcripts.search import SEARCH_TABLE_NAMES
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


# The search index lives outside Base.metadata (its shape differs per database, see
# reflector.transcripts.search): one table on PostgreSQL; on SQLite the same table plus its FTS5
# index and the index's shadow tables.
SEARCH_TABLES = {
    "postgresql": {"transcript_search"},
    "sqlite": {
        "transcript_search",
        "transcript_search_fts",
        "transcript_search_fts_data",
        "transcript_search_fts_idx",
        "transcript_search_fts_docsize",
        "transcript_search_fts_config",
    },
}


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(_tables)


async def triggers(engine: AsyncEngine) -> set[str]:
    """SQLite's triggers (the search index's upkeep); PostgreSQL has none of ours."""
    if engine.dialect.name != "sqlite":
        return set()
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        return {row[0] for row in rows}


def test_search_table_names_cover_every_database() -> None:
    assert set(SEARCH_TABLE_NAMES) == set().union(*SEARCH_TABLES.values())


async def test_round_trip(empty_engine: AsyncEngine) -> None:
    expected = set(Base.metadata.tables) | SEARCH_TABLES[empty_engine.dialect.name]
    await migrate.upgrade(empty_engine)
    assert await tables(empty_engine) == expected
    assert await migrate.current_revision(empty_engine) == migrate.head_revision()
    await migrate.downgrade(empty_engine, "base")
    assert await tables(empty_engine) == set()
    assert await triggers(empty_engine) == set()
    assert await migrate.current_revision(empty_engine) is None
    await migrate.upgrade(empty_engine)
    assert await tables(empty_engine) == expected


def _not_search_table(name: str | None, type_: str, _parents: object) -> bool:
    return not (type_ == "table" and name in SEARCH_TABLE_NAMES)


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": _not_search_table}
    )
    return list(compare_metadata(context, Base.metadata))


async def test_models_match_the_migrations(empty_engine: AsyncEngine) -> None:
    await migrate.upgrade(empty_engine)
    async with empty_engine.connect() as conn:
        differences = await conn.run_sync(_differences)
    assert differences == [], "models and migrations differ: write a migration"


async def test_events_of_deleted_meetings_survive_and_downgrade_unlinks_them(
    empty_engine: AsyncEngine,
) -> None:
    await migrate.upgrade(empty_engine)
    async with empty_engine.begin() as conn:
        # A meeting deleted with its room: the audit log keeps the id it named.
        await conn.execute(
            text(
                "INSERT INTO webhook_events (id, platform, type, created_at, received_at, "
                "meeting_id, outcome, deliveries, payload) VALUES ('evt-1', 'whereby', "
                "'room.client.joined', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'mtg_gone', "
                "'applied', 1, '{}')"
            )
        )
    await migrate.downgrade(empty_engine, "0008")
    async with empty_engine.connect() as conn:
        kept = await conn.execute(text("SELECT id, meeting_id FROM webhook_events"))
        assert kept.all() == [("evt-1", None)]
        foreign_keys = await conn.run_sync(
            lambda sync: inspect(sync).get_foreign_keys("webhook_events")
        )
    assert [fk["referred_table"] for fk in foreign_keys] == ["meetings"]
