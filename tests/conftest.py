"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, the app, clients, users.

Database tests take the `engine` fixture and run once per backend. PostgreSQL is reached at
REFLECTOR_TEST_POSTGRES_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/test); when it
does not answer those tests skip with the reason, except under CI, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.app import create_app
from reflector.auth import service as auth
from reflector.db import migrate
from reflector.db.engine import create_engine, create_session_factory
from reflector.db.models import Base
from reflector.jobs.queue import JobQueue
from reflector.platforms.base import VideoPlatform
from reflector.settings import Settings

POSTGRES_URL = os.environ.get(
    "REFLECTOR_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]
T = TypeVar("T")


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings for a test: no .env file, data under tmp_path."""
    values: dict[str, object] = {"DATA_DIR": tmp_path / "data"}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on its own loop in a helper thread.

    Session-wide set-up (schemas, templates) runs this way, outside the tests' event loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass(frozen=True)
class Database:
    """Where a test's database lives: a URL, and for PostgreSQL the schema to use."""

    backend: str
    url: str
    schema: str | None = None

    def open(self) -> AsyncEngine:
        if self.schema is None:
            return create_engine(self.url)
        return create_engine(
            self.url, connect_args={"server_settings": {"search_path": self.schema}}
        )


async def _check_postgres() -> None:
    engine = create_engine(POSTGRES_URL)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL URL, once known to answer; skips (fails under CI) when it does not."""
    try:
        run_async(_check_postgres())
    except Exception as exc:
        reason = f"PostgreSQL unreachable at {POSTGRES_URL}: {exc.__class__.__name__}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so PostgreSQL tests must run)")
        pytest.skip(reason)
    return POSTGRES_URL


async def _execute(url: str, statement: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def _migrate(database: Database) -> None:
    engine = database.open()
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


@contextmanager
def postgres_schema(url: str, *, migrated: bool) -> Iterator[Database]:
    """A schema of its own for the duration, so test runs never touch other data."""
    schema = f"reflector_test_{secrets.token_hex(4)}"
    run_async(_execute(url, f'CREATE SCHEMA "{schema}"'))
    database = Database("postgresql", url, schema)
    try:
        if migrated:
            run_async(_migrate(database))
        yield database
    finally:
        run_async(_execute(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(scope="session")
def _postgres_template(postgres_url: str) -> Iterator[Database]:
    with postgres_schema(postgres_url, migrated=True) as database:
        yield database


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    run_async(_migrate(Database("sqlite", f"sqlite+aiosqlite:///{path}")))
    return path


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """A migrated database: a fresh SQLite file, or the session's PostgreSQL schema (emptied
    after each test by the engine fixture)."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "reflector.sqlite3"
        shutil.copyfile(template, path)
        return Database("sqlite", f"sqlite+aiosqlite:///{path}")
    postgres: Database = request.getfixturevalue("_postgres_template")
    return postgres


async def _truncate(engine: AsyncEngine) -> None:
    names = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture
async def engine(database: Database) -> AsyncIterator[AsyncEngine]:
    engine = database.open()
    yield engine
    if database.backend == "postgresql":
        await _truncate(engine)
    await engine.dispose()


WEBHOOK_SECRET = "whsec-test-secret"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, WHEREBY_WEBHOOK_SECRET=WEBHOOK_SECRET)


@pytest.fixture
def platforms() -> dict[str, VideoPlatform] | None:
    """The app's platforms; None = the registry's real ones. Modules override this."""
    return None


@pytest.fixture
def jobs() -> JobQueue | None:
    """The app's job queue; None = Celery on the configured broker. Modules override this
    (tests/fakes/jobs.py has a fake that records what was enqueued)."""
    return None


@pytest.fixture
async def app(
    engine: AsyncEngine,
    settings: Settings,
    platforms: dict[str, VideoPlatform] | None,
    jobs: JobQueue | None,
) -> AsyncIterator[FastAPI]:
    application = create_app(
        settings, engine=engine, platforms=platforms, jobs=jobs, background=False
    )
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@dataclass(frozen=True)
class Account:
    email: str
    user_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakeAccount = Callable[[str], Awaitable[Account]]


@pytest.fixture
def make_account(engine: AsyncEngine) -> MakeAccount:
    async def make(email: str) -> Account:
        async with create_session_factory(engine)() as session:
            user = await auth.create_user(session, email)
            issued = await auth.create_token(session, user, "test")
            await session.commit()
            return Account(email=user.email, user_id=user.id, token=issued.secret)

    return make


@pytest.fixture
async def alice(make_account: MakeAccount) -> Account:
    return await make_account("alice@example.com")


@pytest.fixture
async def bob(make_account: MakeAccount) -> Account:
    return await make_account("bob@example.com")


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
