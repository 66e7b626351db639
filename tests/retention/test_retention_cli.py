"""`reflector retention [--dry-run]` and `reflector recordings retry` through the real command,
on a database of its own (SQLite under the test's DATA_DIR), at the real clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from reflector.auth import service as auth
from reflector.cli import app
from reflector.db.base import utcnow
from reflector.db.engine import create_engine, create_session_factory
from reflector.recordings.models import Recording, RecordingStatus
from reflector.recordings.storage import LocalStorage, recording_storage
from reflector.retention.apply import object_url
from reflector.retention.models import RetentionDeletion
from reflector.retention.policy import stamp
from reflector.settings import Settings
from tests.conftest import make_settings, run_async
from tests.retention.conftest import add_recording, add_room


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return CliRunner(env={"DATA_DIR": str(tmp_path / "data"), "RETENTION_RECORDING_DAYS": "2"})


def invoke(cli: CliRunner, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, ["--env-file", str(tmp_path / "absent.env"), *args])
    return result.exit_code, result.stdout, result.stderr


async def _setup(settings: Settings) -> tuple[str, str]:
    """A recording processed three days ago (due), and a failed one whose file is gone."""
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            user = await auth.create_user(session, "ada@example.com")
            await session.commit()
        room = await add_room(engine, user.id, "standup")
        storage = recording_storage(settings)
        due = await add_recording(
            engine,
            storage,
            key="standup-2026-11-28T12:00:05Z.mp4",
            room_id=room,
            processed_at=utcnow() - timedelta(days=3),
        )
        gone = await add_recording(
            engine,
            storage,
            key="standup-2026-11-28T13:00:05Z.mp4",
            room_id=room,
            processed_at=utcnow(),
            status=RecordingStatus.failed,
        )
        async with engine.begin() as conn:
            await conn.execute(
                update(Recording).where(Recording.id == gone).values(object_deleted_at=utcnow())
            )
        return due, gone
    finally:
        await engine.dispose()


async def _audit_count(settings: Settings) -> int:
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(RetentionDeletion)) or 0)
    finally:
        await engine.dispose()


async def _processed_at(settings: Settings, recording_id: str) -> str:
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            row = await session.get(Recording, recording_id)
            assert row is not None
            assert row.processed_at is not None
            return stamp(row.processed_at)
    finally:
        await engine.dispose()


def test_retention_command(cli: CliRunner, tmp_path: Path) -> None:
    code, out, _ = invoke(cli, tmp_path, "migrate")
    assert code == 0, out
    settings = make_settings(tmp_path)
    due, gone = run_async(_setup(settings))
    storage = recording_storage(settings)
    assert isinstance(storage, LocalStorage)
    key = "standup-2026-11-28T12:00:05Z.mp4"
    raw = storage.path(key)
    assert raw.is_file()
    line = "\t".join(
        (
            "recording",
            due,
            object_url(storage, key),
            f"RETENTION_RECORDING_DAYS=2 (setting): processed "
            f"{run_async(_processed_at(settings, due))}",
        )
    )

    code, out, err = invoke(cli, tmp_path, "retention", "--dry-run")
    assert code == 0, err
    assert out.splitlines() == [line]
    assert "dry run: 1 deletion(s) would be made; nothing was changed." in err
    assert raw.is_file()
    assert run_async(_audit_count(settings)) == 0

    code, out, err = invoke(cli, tmp_path, "retention")
    assert code == 0, err
    assert out.splitlines() == [line]
    assert "1 deletion(s) made." in err
    assert not raw.exists()
    assert run_async(_audit_count(settings)) == 1

    code, out, err = invoke(cli, tmp_path, "retention")
    assert (code, out) == (0, "")
    assert "nothing is due." in err

    code, _, err = invoke(cli, tmp_path, "recordings", "retry", gone)
    assert code == 1
    assert f"error: Recording {gone} cannot be processed again: its file was deleted" in err
