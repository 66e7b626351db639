"""Alembic environment. Reflector runs it through reflector.db.migrate, which passes a live
connection; the `alembic` command line also works (it reads the URL from Settings)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from reflector.db.engine import create_engine
from reflector.db.models import Base
from reflector.transcripts.search import SEARCH_TABLE_NAMES

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # The search index is made by hand per database (FTS5 or tsvector), not from models.
        include_name=lambda name, type_, _parents: (
            not (type_ == "table" and name in SEARCH_TABLE_NAMES)
        ),
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_new_engine(url: str) -> None:
    engine = create_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
elif context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from reflector.settings import load_settings

        url = load_settings().database_url
    asyncio.run(_run_with_new_engine(url))
