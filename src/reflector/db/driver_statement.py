"""Core statements run straight on the asyncpg connection, for the webhook hot path.

SQLAlchemy's execution machinery (execution context, parameter processing, result wrapping)
cost ~140 µs of CPU per webhook event on top of ~250 µs for the driver itself. The statement
is still written once, in Core: it is compiled once per dialect, and each parameter goes
through its type's own bind conversion, so the SQL and values are the ones SQLAlchemy would
send. Connections still come from the engine's pool (`on_driver_connection`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util.concurrency import await_, greenlet_spawn

T = TypeVar("T")
# Raised by the server (PostgresError) or for the connection itself (the others).
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


@dataclass(frozen=True)
class DriverStatement:
    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    constants: Mapping[str, Any]

    @classmethod
    def compile(cls, statement: ClauseElement, dialect: Dialect) -> DriverStatement:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        names = tuple(compiled.positiontup or ())
        binds = [compiled.binds[name] for name in names]
        processors = tuple(
            bind.type.dialect_impl(dialect).bind_processor(dialect) for bind in binds
        )
        # Values written into the statement itself (e.g. `deliveries=1`) are bound too.
        constants = {
            name: bind.value for name, bind in zip(names, binds, strict=True) if not bind.required
        }
        return cls(compiled.string, names, processors, constants)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, process in zip(self.names, self.processors, strict=True):
            value = params[name] if name in params else self.constants[name]
            values.append(process(value) if process is not None else value)
        return values

    async def fetchrow(self, driver: Any, params: Mapping[str, Any]) -> Any:
        """One row (or None) on an asyncpg connection from `on_driver_connection`."""
        return await driver.fetchrow(self.sql, *self.arguments(params))

    async def execute(self, driver: Any, params: Mapping[str, Any]) -> None:
        await driver.execute(self.sql, *self.arguments(params))


async def on_driver_connection(engine: AsyncEngine, work: Callable[[Any], Awaitable[T]]) -> T:
    """`work(driver)` on a pooled connection's asyncpg connection, in autocommit.

    The checkout, the work and the return to the pool share one greenlet; `engine.connect()`
    spawns one to check out and another to give back, and each new greenlet maps and unmaps
    a fresh interpreter stack (about 9 µs each). Driver errors are raised as `DBAPIError`,
    as on the Core path; a connection the server or network dropped is invalidated.
    """
    return await greenlet_spawn(_on_driver_connection, engine.sync_engine, work)


def _on_driver_connection(sync_engine: Engine, work: Callable[[Any], Awaitable[T]]) -> T:
    fairy = sync_engine.raw_connection()
    try:
        driver = fairy.driver_connection
        assert driver is not None
        try:
            return await_(work(driver))
        except _DRIVER_ERRORS as exc:
            if driver.is_closed() or isinstance(exc, asyncpg.InternalClientError):
                # Dropped, or its protocol state is lost (seen when the server ends the
                # session between two statements): the pool must not hand it out again.
                fairy.invalidate(exc)
            # The same error class SQLAlchemy would raise, so callers handle both paths alike.
            raise DBAPIError("(driver statement)", None, exc) from exc
    finally:
        fairy.close()
