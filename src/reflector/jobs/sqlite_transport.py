"""The embedded job queue: a kombu transport on a SQLite file that survives killed workers.

kombu ships an SQLAlchemy transport, but (5.7) it acknowledges a delivered message only in the
worker's memory and never deletes it: a worker killed mid-job (SIGKILL, OOM, power loss) loses
the job for good, and the table grows forever. This one, built on kombu's virtual transport
(the same polling model), keeps each message in one row of `reflector_jobs`:

- a worker takes the oldest free message of a queue and writes its holder id on it in one
  write transaction;
- acknowledging deletes the row; a reject with requeue, or a clean shutdown, frees it;
- the messages of a holder that died are freed as soon as any worker polls. A holder is a
  worker process that keeps an exclusive `flock` on its own lock file beside the database; the
  kernel drops the lock when the process dies however it dies, so "dead" is exact and there is
  no timeout to tune. SQLite is one machine's file, so every holder is on this machine.

Selected by the URL scheme `reflector-sqla+sqlite:///path` (see `celery_app.broker_url`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from json import dumps, loads
from pathlib import Path
from queue import Empty
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, virtual
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from reflector.db.base import utcnow

ALIAS = "reflector-sqla"
# How often a polling worker looks for messages of holders that died.
RECOVERY_INTERVAL_SECONDS = 5.0
BUSY_TIMEOUT_SECONDS = 30.0

_metadata = MetaData()
jobs_table = Table(
    "reflector_jobs",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("queue", String(200), nullable=False),
    Column("payload", Text, nullable=False),
    # NULL while waiting; the id of the worker process that took it.
    Column("holder", String(32), nullable=True),
    Column("taken_at", DateTime, nullable=True),
    Index("ix_reflector_jobs_queue_holder_id", "queue", "holder", "id"),
    Index("ix_reflector_jobs_holder", "holder"),
    sqlite_autoincrement=True,
)

_MUTEX = threading.RLock()
_engines: dict[str, Engine] = {}


class _Holder:
    """This process as a holder of messages: an id and the flock that proves it is alive."""

    def __init__(self, lock_dir: Path) -> None:
        self.id = uuid.uuid4().hex
        self.pid = os.getpid()
        lock_dir.mkdir(parents=True, exist_ok=True)
        # Locked before it gets its name, so no other worker ever sees it unlocked.
        draft = lock_dir / f"{self.id}.new"
        self.fd = os.open(draft, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        draft.rename(lock_dir / f"{self.id}.lock")


_holders: dict[Path, _Holder] = {}


def _holder_for(lock_dir: Path) -> _Holder:
    with _MUTEX:
        holder = _holders.get(lock_dir)
        if holder is None or holder.pid != os.getpid():
            holder = _holders[lock_dir] = _Holder(lock_dir)
        return holder


def _after_fork_in_child() -> None:
    # A forked child (a prefork pool process) takes no messages; were it to keep the parent's
    # lock open, the parent's messages would never be freed after the parent died.
    for holder in _holders.values():
        with contextlib.suppress(OSError):
            os.close(holder.fd)
    _holders.clear()
    # SQLite connections must not cross a fork; a task that enqueues opens its own.
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def _if_dead(lock_dir: Path, holder_id: str) -> Iterator[bool]:
    """True (holding the dead holder's lock for the duration) when the holder is gone.

    Freeing is idempotent and a holder id is never reused, so two workers that both see a
    holder dead, or a lock file another worker has already removed, do no harm."""
    path = lock_dir / f"{holder_id}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    finally:
        os.close(fd)


def _wal(dbapi_connection: Any, _record: Any) -> None:
    # Readers (queue sizes) never wait for a writer, and commits are cheaper.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _engine_for(url: str, database: Path) -> Engine:
    with _MUTEX:
        if url not in _engines:
            database.parent.mkdir(parents=True, exist_ok=True)
            # pysqlite's default transaction handling: reads outside transactions, an implicit
            # BEGIN before the first write; `timeout` is how long a writer waits for the lock.
            engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})
            event.listen(engine, "connect", _wal)
            _metadata.create_all(engine)
            _engines[url] = engine
        return _engines[url]


class Channel(virtual.Channel):
    def __init__(self, connection: Any, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)  # type: ignore[no-untyped-call]
        url = self.connection.client.hostname
        database = make_url(url).database
        if not database or database == ":memory:":
            raise ValueError("the embedded job queue needs a SQLite file, not :memory:")
        self._database = Path(database)
        self._lock_dir = self._database.with_name(self._database.name + ".holders")
        self._engine = _engine_for(url, self._database)
        self._rows: dict[str, int] = {}
        self._next_recovery = 0.0

    def _new_queue(self, queue: str, **kwargs: Any) -> None:
        """Queues are just names on the rows."""

    def _has_queue(self, queue: str, **kwargs: Any) -> bool:
        return True

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(jobs_table).values(queue=queue, payload=dumps(message)))

    def _get(self, queue: str, timeout: Any = None) -> Any:
        holder = _holder_for(self._lock_dir)
        if time.monotonic() >= self._next_recovery:
            self._recover(holder)
        jobs = jobs_table
        oldest_free = (
            select(jobs.c.id, jobs.c.payload)
            .where(jobs.c.queue == queue, jobs.c.holder.is_(None))
            .order_by(jobs.c.id)
            .limit(1)
        )
        with self._engine.connect() as conn:
            # Most polls find nothing: a plain read (WAL: no lock) answers those.
            if conn.execute(oldest_free).first() is None:
                conn.rollback()
                raise Empty()
            conn.rollback()
            # One write transaction takes the oldest free message and records its holder.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            row = conn.execute(oldest_free).first()
            if row is None:
                conn.rollback()
                raise Empty()
            conn.execute(
                update(jobs)
                .where(jobs.c.id == row.id)
                .values(holder=holder.id, taken_at=utcnow().replace(tzinfo=None))
            )
            conn.commit()
        payload = loads(row.payload)
        self._rows[payload["properties"]["delivery_tag"]] = row.id
        return payload

    def _recover(self, me: _Holder) -> None:
        self._next_recovery = time.monotonic() + RECOVERY_INTERVAL_SECONDS
        jobs = jobs_table
        with self._engine.connect() as conn:
            holding = set(
                conn.execute(
                    select(jobs.c.holder).where(jobs.c.holder.is_not(None)).distinct()
                ).scalars()
            )
        # Lock files of holders that exited cleanly are swept too.
        known = holding | {path.stem for path in self._lock_dir.glob("*.lock")}
        for holder_id in sorted(known - {me.id}):
            with _if_dead(self._lock_dir, holder_id) as dead:
                if dead and holder_id in holding:
                    with self._engine.begin() as conn:
                        conn.execute(
                            update(jobs)
                            .where(jobs.c.holder == holder_id)
                            .values(holder=None, taken_at=None)
                        )

    def _size(self, queue: str) -> int:
        jobs = jobs_table
        with self._engine.connect() as conn:
            count = conn.scalar(
                select(func.count())
                .select_from(jobs)
                .where(jobs.c.queue == queue, jobs.c.holder.is_(None))
            )
        return int(count or 0)

    def _purge(self, queue: str) -> int:
        jobs = jobs_table
        with self._engine.begin() as conn:
            result = conn.execute(
                delete(jobs).where(jobs.c.queue == queue, jobs.c.holder.is_(None))
            )
        return int(result.rowcount)

    def _delete(self, queue: str, *args: Any, **kwargs: Any) -> None:
        self._purge(queue)

    def _settle(self, row_id: int, *, free: bool) -> None:
        """Delete an acknowledged message, or free a handed-back one for the next worker."""
        jobs = jobs_table
        with self._engine.begin() as conn:
            if free:
                conn.execute(
                    update(jobs).where(jobs.c.id == row_id).values(holder=None, taken_at=None)
                )
            else:
                conn.execute(delete(jobs).where(jobs.c.id == row_id))

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)  # type: ignore[no-untyped-call]
        row_id = self._rows.pop(delivery_tag, None)
        if row_id is not None:
            self._settle(row_id, free=False)

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        # With requeue, kombu calls _restore, which frees the row and forgets it.
        super().basic_reject(delivery_tag, requeue=requeue)  # type: ignore[no-untyped-call]
        row_id = self._rows.pop(delivery_tag, None)
        if row_id is not None:
            self._settle(row_id, free=False)

    def _restore(self, message: Any) -> None:
        row_id = self._rows.pop(message.delivery_tag, None)
        if row_id is None:
            super()._restore(message)  # type: ignore[no-untyped-call]
            return
        self._settle(row_id, free=True)


class Transport(virtual.Transport):
    Channel = Channel

    can_parse_url = True
    driver_type = "sql"
    driver_name = "sqlite"
    connection_errors = (OperationalError,)

    def driver_version(self) -> str:
        return sqlite3.sqlite_version


TRANSPORT_ALIASES.setdefault(ALIAS, f"{__name__}:Transport")
