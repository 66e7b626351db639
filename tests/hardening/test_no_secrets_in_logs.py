"""No secret in any log line, at LOG_LEVEL=DEBUG, through a whole meeting.

Real processes on loopback: `reflector sandbox` (the Whereby stand-in, with this test's API key
and webhook secret), `reflector serve` with its embedded job worker, and S3 on moto with the
Whereby bucket keys (nothing else: the server reads the bucket with those keys too). A room's
meeting is created, two people join and leave, the sandbox sends signed webhooks and writes
the recording into the bucket, the worker transcribes it; the owner fetches the transcript and
a signed download link, and a forged webhook is refused. Then every line that any of the
processes printed is searched for each secret, raw and in the usual encodings.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest

from reflector.logs import configure_logging
from tests.processes import free_port, reflector_bin, wait_answer, wait_for
from tests.recordings.conftest import REGION, aws_client, unique_name

SECRETS = {
    "WHEREBY_API_KEY": "wbk-LEAKCHECK-7Hq2Vx9Lm4Rt8Zp3Nc6",
    "WHEREBY_WEBHOOK_SECRET": "whs-LEAKCHECK-3Jd8Kf2Wq7Ys5Bn1Mg4",
    "AWS_WHEREBY_ACCESS_KEY_ID": "AKIALEAKCHECK7T2Y9U3",
    "AWS_WHEREBY_ACCESS_KEY_SECRET": "aws-LEAKCHECK-V3bN6mK9jH2gF5dS8aQ1wE4r",
    "LLM_API_KEY": "llm-LEAKCHECK-Pq4Zr8Tx2Wv6Ys1Ub5",
    "TRANSCRIBE_API_KEY": "trk-LEAKCHECK-Gh7Jk3Lm9Np5Qr2St8",
}


def encodings(secret: str) -> set[str]:
    """The secret as it would appear in a log line: raw, URL-, JSON-, hex- or base64-encoded
    (base64 at every alignment, as inside a longer encoded value such as a Basic header)."""
    raw = secret.encode()
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        raw.hex(),
        raw.hex().upper(),
    }
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * shift + raw).decode().rstrip("=")
            # Only the characters made of the secret's bits alone.
            forms.add(text[-(-shift * 8 // 6) : -2])
    return {form for form in forms if len(form) >= 12}


def test_encodings_find_an_embedded_secret() -> None:
    secret = SECRETS["WHEREBY_API_KEY"]
    basic = base64.b64encode(f"user:{secret}".encode()).decode()
    assert any(form in basic for form in encodings(secret))
    assert any(form in f"url?key={quote(secret)}" for form in encodings(secret))


@pytest.mark.parametrize("level", ["DEBUG", "WARNING"])
def test_libraries_that_print_credentials_never_log_debug(level: str) -> None:
    # botocore prints Authorization headers, urllib3 signed URLs, aiosqlite statement
    # parameters (a room's stored webhook secret among them): never at DEBUG, and never
    # louder than LOG_LEVEL.
    configure_logging(level)
    try:
        for name in (
            "botocore.endpoint",
            "boto3",
            "s3transfer",
            "urllib3.connectionpool",
            "aiosqlite",
        ):
            logger = logging.getLogger(name)
            assert not logger.isEnabledFor(logging.DEBUG), name
            assert logger.getEffectiveLevel() >= logging.getLevelName(level), name
    finally:
        configure_logging()


@contextmanager
def running(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[None]:
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
        try:
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def cli(env: dict[str, str], cwd: Path, log: Path, *args: str) -> str:
    """Run `reflector ARGS`; its stderr goes to `log`, its stdout is returned."""
    with log.open("a") as err:
        done = subprocess.run(
            [reflector_bin(), *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=120,
            check=True,
        )
    return done.stdout


def test_no_secret_reaches_any_log(moto_server: str, tmp_path: Path) -> None:
    bucket = unique_name("leakcheck")
    aws_client("s3", moto_server).create_bucket(Bucket=bucket)
    port, sandbox_port = free_port(), free_port()
    base, sandbox = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sandbox_port}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WHEREBY_", "AWS_", "LLM_", "TRANSCRIBE_", "DATABASE_URL"))
        and key != "REFLECTOR_ENV_FILE"
    }
    env |= SECRETS
    env |= {
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_LEVEL": "DEBUG",
        "BASE_URL": base,
        "WHEREBY_API_URL": f"{sandbox}/v1",
        "WHEREBY_SANDBOX_PORT": str(sandbox_port),
        "RECORDING_STORAGE_AWS_BUCKET_NAME": bucket,
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_DEFAULT_REGION": REGION,
        # No credentials of this machine: the bucket is read with the Whereby keys.
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "DIARIZE_BACKEND": "none",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    cli(env, tmp_path, logs / "cli.log", "migrate")
    cli(env, tmp_path, logs / "cli.log", "users", "create", "ops@example.com", "--admin")
    # The one place a token is printed, by design: kept out of the logs searched below.
    token = cli(env, tmp_path, logs / "cli.log", "tokens", "create", "ops@example.com").strip()
    secrets = {**SECRETS, "admin token": token}
    auth = {"Authorization": f"Bearer {token}"}

    with ExitStack() as stack:
        stack.enter_context(
            running(
                [
                    reflector_bin(),
                    "sandbox",
                    "--port",
                    str(sandbox_port),
                    "--webhook-url",
                    f"{base}/v1/whereby",
                ],
                env,
                tmp_path,
                logs / "sandbox.log",
            )
        )
        stack.enter_context(
            running(
                [reflector_bin(), "serve", "--port", str(port), "--no-sandbox"],
                env,
                tmp_path,
                logs / "serve.log",
            )
        )
        wait_answer(f"{sandbox}/_sandbox/meetings", within=60)
        wait_answer(f"{base}/health", within=60)
        _meeting_to_transcript(base, sandbox, auth, logs)

    # The room's outgoing-webhook signing secret, as stored (created with its webhook_url).
    with sqlite3.connect(tmp_path / "data" / "reflector.sqlite3") as db:
        [(room_secret,)] = db.execute("SELECT webhook_secret FROM rooms").fetchall()
    assert room_secret
    secrets["room webhook secret"] = room_secret
    text = {path.name: path.read_text() for path in sorted(logs.iterdir())}
    everything = "\n".join(text.values())
    # The logs are there, and at DEBUG: the search below searched something.
    assert "debug" in everything.lower(), everything[-3000:]
    assert "recording processed" in text["serve.log"], text["serve.log"][-3000:]
    for name, secret in secrets.items():
        for form in encodings(secret):
            leaks = [
                f"{file}: {line}"
                for file, content in text.items()
                for line in content.splitlines()
                if form in line
            ]
            assert not leaks, f"{name} ({form!r}) is in the logs:\n" + "\n".join(leaks[:5])


def _meeting_to_transcript(base: str, sandbox: str, auth: dict[str, str], logs: Path) -> None:
    created = httpx.post(
        f"{base}/v1/rooms",
        json={
            "name": "leak-check",
            "recording_trigger": "automatic",
            # Nothing answers there: its deliveries fail, and are logged.
            "webhook_url": f"{sandbox}/no-such-hook",
        },
        headers=auth,
    )
    assert created.status_code == 201, created.text
    meeting = httpx.post(f"{base}/v1/rooms/leak-check/meeting", headers=auth, timeout=30)
    assert meeting.status_code == 201, meeting.text
    control = f"{sandbox}/_sandbox/meetings/{meeting.json()['platform_meeting_id']}"
    people = []
    for name in ("Ann", "Bob"):
        joined = httpx.post(f"{control}/participants", json={"displayName": name})
        assert joined.status_code == 201, joined.text
        people.append(joined.json()["participantId"])
    for person in people:
        assert httpx.delete(f"{control}/participants/{person}").status_code in (200, 204)
    assert httpx.get(f"{sandbox}/_sandbox/wait", params={"timeout": 60}, timeout=70).is_success
    # A forged webhook, and the health check that calls Whereby with the key.
    forged = httpx.post(
        f"{base}/v1/whereby",
        content=b'{"type":"room.client.joined"}',
        headers={"Whereby-Signature": "t=1,v1=00", "Content-Type": "application/json"},
    )
    assert forged.status_code in (400, 401)
    assert httpx.get(f"{base}/v1/whereby/health", timeout=30).status_code == 200

    def finished() -> dict[str, Any] | None:
        items = httpx.get(f"{base}/v1/recordings", headers=auth).json()["items"]
        done = [r for r in items if r["status"] in ("completed", "failed")]
        return done[0] if done else None

    recording = wait_for(finished, within=300, every=0.5)
    assert recording, (logs / "serve.log").read_text()[-4000:]
    assert recording["status"] == "completed", recording
    transcript = httpx.get(f"{base}/v1/transcripts/{recording['transcript_id']}", headers=auth)
    assert transcript.status_code == 200, transcript.text
    assert transcript.json()["words"]
    link = httpx.get(f"{base}/v1/recordings/{recording['id']}/download", headers=auth)
    assert link.status_code == 307, link.text
    assert httpx.get(link.headers["location"], timeout=30).status_code == 200
