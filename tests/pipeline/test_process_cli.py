"""`reflector process FILE`: the whole pipeline with the real models, no server."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reflector.cli import app
from reflector.logs import configure_logging
from tests.processes import reflector_bin, wait_for

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MEDIA = FIXTURES / "media"
PHONE_CALL = FIXTURES / "speech" / "phone-call" / "sample.wav"
KEYS = {
    "duration",
    "language",
    "title",
    "short_summary",
    "long_summary",
    "action_items",
    "topics",
    "speakers",
    "segments",
    "words",
}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # `process` turns step logs down to warnings for this process; later tests expect info.
    yield
    configure_logging()
    logging.getLogger().setLevel(logging.INFO)


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "REFLECTOR_ENV_FILE", "LLM_", "TRANSCRIBE_"))
    }
    return env | {"DATA_DIR": str(tmp_path / "data")}


def check_document(doc: dict[str, object]) -> None:
    assert set(doc) >= KEYS
    assert doc["duration"] == pytest.approx(24.7, abs=0.3)
    assert doc["language"] == "en"
    for key in ("title", "short_summary", "long_summary"):
        assert isinstance(doc[key], str), key
        assert doc[key], key
    words = doc["words"]
    assert isinstance(words, list)
    assert len(words) > 50
    assert {"text", "start", "end", "speaker"} <= set(words[0])
    spoken = " ".join(w["text"].lower() for w in words)
    assert "dashwood" in spoken
    assert "amiable" in spoken
    segments = doc["segments"]
    assert isinstance(segments, list)
    assert segments
    assert {"speaker", "start", "end", "text"} <= set(segments[0])
    topics = doc["topics"]
    assert isinstance(topics, list)
    assert topics
    assert {"title", "summary", "start", "end"} <= set(topics[0])
    speakers = doc["speakers"]
    assert isinstance(speakers, list)
    assert {"id", "name"} <= set(speakers[0])


def test_an_mp4_prints_the_json_with_a_progress_bar(tmp_path: Path) -> None:
    done = subprocess.run(
        [reflector_bin(), "process", str(MEDIA / "talk.mp4")],
        cwd=tmp_path,
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    check_document(json.loads(done.stdout))
    for _number, step in enumerate(("audio", "transcribe", "diarize", "topics", "exports"), 1):
        assert step in done.stderr
    assert "[8/8] exports" in done.stderr
    assert "100%" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("suffix", ["webm", "mkv", "m4a", "mp3", "ogg"])
def test_every_container_gives_the_same_json(
    suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    runner = CliRunner(env={"DATA_DIR": str(tmp_path / "data")})
    result = runner.invoke(app, ["process", str(MEDIA / f"talk.{suffix}")])
    assert result.exit_code == 0, result.output[-3000:]
    check_document(json.loads(result.stdout))


@pytest.mark.parametrize(
    ("fmt", "start"),
    [("vtt", "WEBVTT"), ("srt", "1\n00:00:0"), ("md", "# "), ("txt", "")],
)
def test_other_formats_written_to_a_file(
    fmt: str, start: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner(env={"DATA_DIR": str(tmp_path / "data")})
    out = tmp_path / "out" / f"talk.{fmt}"
    result = runner.invoke(
        app, ["process", str(MEDIA / "talk.m4a"), "--format", fmt, "-o", str(out)]
    )
    assert result.exit_code == 0, result.output[-3000:]
    assert result.stdout == ""
    text = out.read_text()
    assert text.startswith(start)
    assert "Dashwood" in text


def test_the_phone_call_has_two_speakers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner(env={"DATA_DIR": str(tmp_path / "data")})
    result = runner.invoke(app, ["process", str(PHONE_CALL)])
    assert result.exit_code == 0, result.output[-3000:]
    doc = json.loads(result.stdout)
    assert [s["name"] for s in doc["speakers"]] == ["Speaker 1", "Speaker 2"]
    assert {s["speaker"] for s in doc["segments"]} == {0, 1}


@pytest.mark.parametrize(
    ("content", "sentence"),
    [
        (b"", "The file is empty."),
        (b"just some text, not a video\n" * 20, "This is not a media file FFmpeg can read."),
    ],
)
def test_unusable_files_exit_1_with_a_sentence(
    content: bytes, sentence: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "meeting.mp4"
    bad.write_bytes(content)
    runner = CliRunner(env={"DATA_DIR": str(tmp_path / "data")})
    result = runner.invoke(app, ["process", str(bad)])
    assert result.exit_code == 1
    assert f"error: {bad}: {sentence}" in result.stderr
    assert result.stdout == ""
    missing = runner.invoke(app, ["process", str(tmp_path / "nope.mp4")])
    assert missing.exit_code == 2
    assert "is not a file" in missing.stderr


def test_a_run_killed_between_steps_resumes_without_redoing_them(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    command = [reflector_bin(), "process", str(MEDIA / "talk.mp4"), "--workdir", str(workdir)]
    first = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env_for(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    transcribed = workdir / "steps" / "transcribe.json"
    try:
        assert wait_for(transcribed.is_file, within=120, every=0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert not (workdir / "steps" / "exports.json").exists()
    kept = {
        step: (workdir / "steps" / f"{step}.json").stat().st_mtime_ns
        for step in ("audio", "transcribe")
    }
    time.sleep(0.05)
    second = subprocess.run(
        command, cwd=tmp_path, env=env_for(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stderr[-3000:]
    check_document(json.loads(second.stdout))
    for step, mtime in kept.items():
        assert (workdir / "steps" / f"{step}.json").stat().st_mtime_ns == mtime, step
    assert (workdir / "steps" / "diarize.json").stat().st_mtime_ns > kept["transcribe"]
    assert "[2/8] transcribe [------------------------]   0%" not in second.stderr
