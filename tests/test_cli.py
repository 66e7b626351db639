"""The `reflector` command, in-process for the admin commands and as a real server process."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from reflector.cli import app
from reflector.db.migrate import head_revision
from tests.processes import TOKEN, free_port, reflector_bin, start_serve, wait_answer

ROOM = {
    "name": "my-whereby-room",
    "platform": "whereby",
    "recording_type": "cloud",
    "recording_trigger": "automatic-2nd-participant",
    "is_locked": False,
    "room_mode": "normal",
}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return CliRunner(env={"DATA_DIR": str(tmp_path / "data")})


def invoke(cli: CliRunner, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, ["--env-file", str(tmp_path / "absent.env"), *args])
    return result.exit_code, result.stdout, result.stderr


def test_admin_commands(cli: CliRunner, tmp_path: Path) -> None:
    code, _, err = invoke(cli, tmp_path, "users", "create", "ada@example.com")
    assert code == 1
    assert "reflector migrate" in err

    code, out, _ = invoke(cli, tmp_path, "migrate")
    assert code == 0, out
    assert str(head_revision()) in out

    code, out, _ = invoke(cli, tmp_path, "users", "create", "Ada@Example.com")
    assert code == 0
    assert "ada@example.com" in out
    code, _, err = invoke(cli, tmp_path, "users", "create", "ada@example.com")
    assert code == 1
    assert "already exists" in err

    code, out, err = invoke(cli, tmp_path, "tokens", "create", "ada@example.com", "--name", "ci")
    assert code == 0
    secret = out.strip()
    assert TOKEN.fullmatch(secret), out
    assert "shown only this once" in err
    token_id = re.search(r"tok_[0-9a-f]+", err)
    assert token_id

    code, out, _ = invoke(cli, tmp_path, "tokens", "list")
    assert code == 0
    assert token_id.group() in out
    assert "ci" in out
    assert secret not in out

    code, _, err = invoke(cli, tmp_path, "tokens", "create", "nobody@example.com")
    assert code == 1
    assert "reflector users create" in err

    code, out, _ = invoke(cli, tmp_path, "tokens", "revoke", token_id.group())
    assert code == 0
    assert "revoked" in out
    code, out, _ = invoke(cli, tmp_path, "tokens", "list", "--email", "ada@example.com")
    assert "revoked" in out

    code, _, err = invoke(cli, tmp_path, "tokens", "revoke", "tok_nope")
    assert code == 1
    assert "tokens list" in err

    code, out, _ = invoke(cli, tmp_path, "migrate", "base", "--downgrade")
    assert code == 0
    assert "base" in out


def test_malformed_setting_stops_with_one_line(cli: CliRunner, tmp_path: Path) -> None:
    env = tmp_path / "bad.env"
    env.write_text("SQS_POLLING_TIMEOUT_SECONDS=often\n")
    result = cli.invoke(app, ["--env-file", str(env), "migrate"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "SQS_POLLING_TIMEOUT_SECONDS" in lines[0]
    assert "integer" in lines[0]


@pytest.mark.parametrize("command", [["migrate"], ["users", "list"], ["retention", "--dry-run"]])
def test_unreachable_database_stops_with_one_line(
    cli: CliRunner, tmp_path: Path, command: list[str]
) -> None:
    env = tmp_path / "down.env"
    # A port nothing listens on: the connection is refused at once.
    env.write_text(f"DATABASE_URL=postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none\n")
    result = cli.invoke(app, ["--env-file", str(env), *command])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: the database does not answer (")
    assert lines[0].endswith("check DATABASE_URL and that the database server is running.")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    """`reflector serve` as a user runs it: a fresh folder, no .env, default settings."""
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    served = start_serve(tmp_path, env)
    assert served.token is not None
    yield served.base, served.token, served.process
    served.stop()


def test_serve_from_an_empty_folder(
    server: tuple[str, str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    base, token, _ = server
    assert (tmp_path / "data" / "reflector.sqlite3").exists()
    assert httpx.get(f"{base}/health").status_code == 200

    auth = {"Authorization": f"Bearer {token}"}
    created = httpx.post(f"{base}/v1/rooms", json=ROOM, headers=auth)
    assert created.status_code == 201
    assert {key: created.json()[key] for key in ROOM} == ROOM
    assert httpx.post(f"{base}/v1/rooms", json=ROOM, headers=auth).status_code == 409
    huge = httpx.post(f"{base}/v1/rooms", json={**ROOM, "room_mode": "huge"}, headers=auth)
    assert huge.status_code == 422
    assert "room_mode" in huge.json()["detail"]
    assert httpx.post(f"{base}/v1/rooms", json=ROOM).status_code == 401

    # A second user, made with the CLI against the same database, cannot see the room.
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data")}
    env.pop("DATABASE_URL", None)
    run = [reflector_bin(), "--env-file", str(tmp_path / "absent.env")]
    subprocess.run([*run, "users", "create", "bob@example.com"], env=env, check=True)
    other = subprocess.run(
        [*run, "tokens", "create", "bob@example.com"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    bob = {"Authorization": f"Bearer {other}"}
    room_url = f"{base}/v1/rooms/my-whereby-room"
    assert httpx.get(room_url, headers=bob).status_code == 404
    assert httpx.patch(room_url, json={"is_locked": True}, headers=bob).status_code == 404
    assert httpx.delete(room_url, headers=bob).status_code == 404
    assert httpx.get(room_url, headers=auth).status_code == 200


def test_second_start_prints_no_token(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    subprocess.run([reflector_bin(), "migrate"], cwd=tmp_path, env=env, check=True)
    first = subprocess.run(
        [reflector_bin(), "users", "create", "someone@example.com"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "someone@example.com" in first.stdout
    out = start_serve(tmp_path, env, expect_token=False).stop()
    assert not TOKEN.search(out)


def test_sandbox_command(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHEREBY_")}
    process = subprocess.Popen(
        [reflector_bin(), "sandbox", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        refused = wait_answer(f"{base}/v1/meetings")
        assert refused.status_code == 401
        listing = wait_answer(
            f"{base}/v1/meetings", headers={"Authorization": "Bearer reflector-sandbox-key"}
        )
        assert listing.status_code == 200
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert "Whereby sandbox at" in err
    assert "/v1/whereby" in err


def test_serve_with_two_workers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    served = start_serve(tmp_path, env, "--workers", "2", "--no-sandbox")
    assert served.token is not None
    assert httpx.get(f"{served.base}/health").status_code == 200
    served.stop()
