"""End to end over real HTTP on loopback: `reflector serve` with its Whereby sandbox."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reflector.sandbox.defaults import SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET
from reflector.settings import Settings
from tests.conftest import Account, make_settings
from tests.processes import free_port, start_serve, wait_for

ROOM = {
    "name": "my-whereby-room",
    "platform": "whereby",
    "recording_type": "cloud",
    "recording_trigger": "automatic-2nd-participant",
    "is_locked": False,
    "room_mode": "normal",
}
BUCKET = "reflector-recordings"
ACCESS_KEY_ID = "AKIAREFLECTORTEST"
ACCESS_KEY_SECRET = "recording-secret-do-not-log"


@dataclass
class Running:
    base: str
    sandbox: str
    token: str
    data_dir: Path
    stderr: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("serve")
    sandbox_port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WHEREBY_", "AWS_", "DATABASE_URL"))
    }
    env |= {
        "WHEREBY_SANDBOX_PORT": str(sandbox_port),
        "RECORDING_STORAGE_AWS_BUCKET_NAME": BUCKET,
        "AWS_WHEREBY_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_WHEREBY_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
    }
    stderr = folder / "stderr.log"
    with stderr.open("w") as err:
        served = start_serve(folder, env, stderr=err)
        assert served.token is not None
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        yield Running(served.base, sandbox, served.token, folder / "data", stderr)
        served.stop()


def test_serve_says_it_uses_the_sandbox(running: Running) -> None:
    log = running.stderr.read_text()
    assert "WHEREBY_API_KEY is not set" in log
    assert running.sandbox in log
    assert "embedded worker" in log


def test_a_meeting_end_to_end(running: Running) -> None:
    created = httpx.post(f"{running.base}/v1/rooms", json=ROOM, headers=running.auth)
    assert created.status_code == 201, created.text
    httpx.delete(f"{running.sandbox}/_sandbox/requests")

    response = httpx.post(
        f"{running.base}/v1/rooms/my-whereby-room/meeting", headers=running.auth, timeout=30
    )
    assert response.status_code == 201, response.text
    meeting = response.json()
    assert meeting["room_url"].startswith(f"{running.sandbox}/my-whereby-room-")
    assert meeting["host_room_url"].startswith(meeting["room_url"] + "?roomKey=")

    sent = [
        r
        for r in httpx.get(f"{running.sandbox}/_sandbox/requests").json()["requests"]
        if r["method"] == "POST" and r["path"] == "/v1/meetings"
    ]
    assert len(sent) == 1
    body = sent[0]["body"]
    assert body["isLocked"] is False
    assert body["roomMode"] == "normal"
    assert body["roomNamePrefix"] == "my-whereby-room-"
    assert body["roomNamePattern"] == "uuid"
    assert body["fields"] == ["hostRoomUrl"]
    assert body["endDate"].endswith("Z")
    recording = body["recording"]
    assert recording["type"] == "cloud"
    assert recording["startTrigger"] == "automatic-2nd-participant"
    assert recording["destination"] == {
        "provider": "s3",
        "bucket": BUCKET,
        "accessKeyId": ACCESS_KEY_ID,
        "accessKeySecret": ACCESS_KEY_SECRET,
        "fileFormat": "mp4",
    }

    # Two people join through the sandbox: the meeting shows them within a second.
    control = f"{running.sandbox}/_sandbox/meetings/{meeting['platform_meeting_id']}"
    url = f"{running.base}/v1/meetings/{meeting['id']}"
    people = {}
    for name in ("Ada", "Grace"):
        joined = httpx.post(f"{control}/participants", json={"displayName": name})
        assert joined.status_code == 201, joined.text
        people[name] = joined.json()["participantId"]
    started = time.monotonic()

    def present() -> dict[str, Any] | None:
        state = httpx.get(url, headers=running.auth).json()
        names = {p["display_name"] for p in state["participants"] if p["present"]}
        return state if state["num_clients"] == 2 and {"Ada", "Grace"} <= names else None

    state = wait_for(present, within=1.0)
    assert state, httpx.get(url, headers=running.auth).json()
    assert time.monotonic() - started < 1.0
    # The cloud recording started with the second person: Whereby's recorder is a client,
    # counted by role but not as a person.
    recording = wait_for(
        lambda: httpx.get(url, headers=running.auth).json()["num_clients_by_role"].get("recorder"),
        within=2.0,
    )
    assert recording == 1
    assert httpx.get(url, headers=running.auth).json()["num_clients"] == 2

    httpx.delete(f"{control}/participants/{people['Ada']}")
    one = wait_for(
        lambda: httpx.get(url, headers=running.auth).json()["num_clients"] == 1, within=1.0
    )
    assert one

    # The last person leaves: the recording stops, is written as Whereby names it, and
    # recording.finished arrives.
    httpx.delete(f"{control}/participants/{people['Grace']}")
    assert httpx.get(f"{running.sandbox}/_sandbox/wait", params={"timeout": 30}).status_code == 200
    recordings = httpx.get(f"{running.sandbox}/_sandbox/recordings").json()["recordings"]
    assert len(recordings) == 1
    key = recordings[0]["key"]
    room_name = meeting["platform_room_name"].lstrip("/")
    assert re.fullmatch(re.escape(room_name) + r"-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\.mp4", key)
    assert (running.data_dir / "recordings" / BUCKET / key).stat().st_size > 0
    final = httpx.get(url, headers=running.auth).json()
    assert final["num_clients"] == 0
    assert final["sessions"]
    assert final["sessions"][0]["ended_at"] is not None

    # recording.finished fed the intake; the embedded worker (no Redis, no AWS) processes it.
    def completed() -> dict[str, Any] | None:
        items = httpx.get(f"{running.base}/v1/recordings", headers=running.auth).json()["items"]
        done = [r for r in items if r["status"] in ("completed", "failed")]
        return done[0] if done else None

    recording = wait_for(completed, within=180.0)
    assert recording, httpx.get(f"{running.base}/v1/recordings", headers=running.auth).json()
    assert recording["status"] == "completed", recording
    assert recording["key"] == key
    assert recording["meeting_id"] == meeting["id"]
    assert recording["source"] == "webhook"
    assert recording["duration"] == pytest.approx(24.7, abs=0.5)
    derived = running.data_dir / "derived" / "transcripts" / recording["transcript_id"]
    assert (derived / "audio.wav").stat().st_size > 0
    assert (derived / "playback.m4a").stat().st_size > 0
    transcript = httpx.get(
        f"{running.base}/v1/transcripts/{recording['transcript_id']}", headers=running.auth
    ).json()
    assert transcript["status"] == "ended", transcript
    assert transcript["words"]


def _readme_snippet(repo_root: Path) -> str:
    readme = (repo_root / "README.md").read_text()
    after = readme.split("Sign a webhook by hand", 1)[1]
    return after.split("```sh\n", 1)[1].split("```", 1)[0]


def test_the_readme_signing_recipe_works(running: Running, repo_root: Path) -> None:
    script = _readme_snippet(repo_root).replace("127.0.0.1:1250", running.base.split("//")[1])
    assert "openssl dgst -sha256 -hmac" in script
    accepted = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert '"status":"ignored"' in accepted.stdout, accepted.stdout
    again = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert '"status":"duplicate"' in again.stdout
    # One changed byte after signing: refused.
    tampered = script.strip().replace(
        '--data-binary "$BODY"', '--data-binary "${BODY/knocked/knockeD}"'
    )
    refused = subprocess.run(
        ["bash", "-c", tampered + ' -o /dev/null -w "%{http_code}"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert refused.stdout.strip().endswith("401")


def test_whereby_health(running: Running) -> None:
    response = httpx.get(f"{running.base}/v1/whereby/health")
    assert response.status_code == 200
    health = response.json()
    assert health["api_key_configured"] is True
    assert health["webhook_secret_configured"] is True
    assert health["api_status"] == "ok"
    assert health["api_checked_at"] is not None
    assert health["last_verified_event_at"] is not None
    assert health["accepted_24h"] >= 1
    for secret in (SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET, ACCESS_KEY_SECRET):
        assert secret not in response.text


def test_no_secret_in_the_server_log(running: Running) -> None:
    log = running.stderr.read_text()
    for secret in (ACCESS_KEY_SECRET, running.token):
        assert secret not in log


@pytest.fixture
def settings(tmp_path: Path, running: Running) -> Settings:
    """The in-process app of `client`, talking to the running sandbox."""
    return make_settings(
        tmp_path,
        WHEREBY_API_URL=f"{running.sandbox}/v1",
        WHEREBY_API_KEY=SANDBOX_API_KEY,
        WHEREBY_WEBHOOK_SECRET=SANDBOX_WEBHOOK_SECRET,
    )


async def test_rate_limited_by_whereby_waits_and_succeeds(
    client: httpx.AsyncClient, alice: Account, running: Running
) -> None:
    await client.post("/v1/rooms", json={"name": "patient"}, headers=alice.headers)
    async with httpx.AsyncClient() as http:
        limited = await http.put(
            f"{running.sandbox}/_sandbox/rate-limit", json={"count": 1, "retryAfter": 1}
        )
        assert limited.status_code == 200
    started = time.monotonic()
    response = await client.post("/v1/rooms/patient/meeting", headers=alice.headers)
    assert response.status_code == 201, response.text
    assert time.monotonic() - started >= 1.0


async def test_a_wrong_api_key_is_named(
    engine: Any, tmp_path: Path, alice: Account, running: Running
) -> None:
    from asgi_lifespan import LifespanManager

    from reflector.app import create_app

    settings = make_settings(
        tmp_path, WHEREBY_API_URL=f"{running.sandbox}/v1", WHEREBY_API_KEY="not-the-key"
    )
    app = create_app(settings, engine=engine, background=False)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.post("/v1/rooms", json={"name": "locked-out"}, headers=alice.headers)
            response = await client.post("/v1/rooms/locked-out/meeting", headers=alice.headers)
            health = await client.get("/v1/whereby/health")
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "whereby_unauthorized"
    assert "WHEREBY_API_KEY" in body["detail"]
    assert "not-the-key" not in response.text
    assert health.json()["api_status"] == "unauthorized"
