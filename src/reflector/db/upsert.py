"""INSERT ... ON CONFLICT for the backend at hand (PostgreSQL and SQLite both support it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite


def insert_for(dialect: str, table: Any) -> Any:
    """An insert construct with on_conflict_do_nothing/do_update for the named backend."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
