"""The step runner: outputs stored per step, finished steps skipped, a dead run resumed at the
step it was in, a changed parameter re-running that step and everything after it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reflector.pipeline.runner import STEPS, Pipeline, PipelineError, Request
from reflector.pipeline.store import DirectoryStore, StorageStore
from reflector.pipeline.types import PresenceInterval
from reflector.recordings.storage import LocalStorage
from tests.fakes.pipeline import WorkerDied, scripted_backends

TALK = Path(__file__).resolve().parent.parent / "fixtures" / "media" / "talk.mp4"


async def fetch_talk(_into: Path) -> Path:
    return TALK


async def test_a_run_stores_every_step_and_a_rerun_reuses_them(tmp_path: Path) -> None:
    backends, transcriber, diarizer = scripted_backends()
    seen: list[tuple[str, float]] = []
    pipeline = Pipeline(
        backends,
        DirectoryStore(tmp_path),
        tmp_path,
        on_progress=lambda step, fraction: seen.append((step, fraction)),
    )
    first = await pipeline.run(fetch_talk, Request())
    doc = first.document
    assert doc.duration == pytest.approx(24.7, abs=0.3)
    assert [w.text for w in doc.words][:2] == ["hello", "there"]
    assert {w.speaker for w in doc.words} == {0, 1}
    assert [s.name for s in doc.speakers] == ["Speaker 1", "Speaker 2"]
    assert doc.title
    assert doc.short_summary
    assert doc.topics
    assert first.reused == []
    assert list(first.seconds) == list(STEPS)
    assert {step for step, _ in seen} == set(STEPS)
    assert all(0.0 <= f <= 1.0 for _, f in seen)
    for step in STEPS:
        stored = json.loads((tmp_path / "steps" / f"{step}.json").read_text())
        assert stored["step"] == step
    assert set(first.exports.files) == {"json", "vtt", "srt", "md", "txt"}
    assert (tmp_path / "transcript.vtt").read_text().startswith("WEBVTT")

    again = await pipeline.run(fetch_talk, Request())
    assert again.reused == list(STEPS)
    assert again.document == doc
    assert (transcriber.calls, diarizer.calls) == (1, 1)


async def test_a_run_killed_in_a_step_resumes_there(tmp_path: Path) -> None:
    backends, transcriber, diarizer = scripted_backends()
    store = StorageStore(LocalStorage(tmp_path / "derived"), "transcripts/trn_1")
    diarizer.die = True
    with pytest.raises(WorkerDied):
        await Pipeline(backends, store, tmp_path / "work-1").run(fetch_talk, Request())
    assert (transcriber.calls, diarizer.calls) == (1, 1)

    fetched: list[Path] = []

    async def must_not_fetch(into: Path) -> Path:
        fetched.append(into)
        return TALK

    # Another worker, another folder: only the stored outputs carry over.
    resumed = await Pipeline(backends, store, tmp_path / "work-2").run(must_not_fetch, Request())
    assert resumed.reused == ["audio", "transcribe"]
    assert fetched == []  # the decoded audio came from storage, not the recording
    assert (transcriber.calls, diarizer.calls) == (1, 2)
    assert resumed.document.words


async def test_a_changed_parameter_reruns_that_step_and_the_rest(tmp_path: Path) -> None:
    backends, transcriber, diarizer = scripted_backends()
    pipeline = Pipeline(backends, DirectoryStore(tmp_path), tmp_path)
    await pipeline.run(fetch_talk, Request())
    second = await pipeline.run(fetch_talk, Request(num_speakers=2))
    assert second.reused == ["audio", "transcribe"]
    assert diarizer.seen_num_speakers == [None, 2]
    presence = (PresenceInterval(participant_id="p1", name="Ada", start=-5, end=None),)
    third = await pipeline.run(fetch_talk, Request(num_speakers=2, presence=presence))
    assert third.reused == ["audio", "transcribe", "diarize", "assemble"]
    assert transcriber.calls == 1


async def test_a_step_failure_names_the_step_and_keeps_what_was_done(tmp_path: Path) -> None:
    backends, _transcriber, diarizer = scripted_backends()
    diarizer.fail_with = "The diarizer could not read the audio."
    pipeline = Pipeline(backends, DirectoryStore(tmp_path), tmp_path)
    with pytest.raises(PipelineError) as failed:
        await pipeline.run(fetch_talk, Request())
    assert failed.value.step == "diarize"
    assert "could not read" in str(failed.value)
    assert (tmp_path / "steps" / "transcribe.json").is_file()
    assert not (tmp_path / "steps" / "diarize.json").exists()


async def test_a_damaged_stored_output_is_made_again(tmp_path: Path) -> None:
    backends, transcriber, _ = scripted_backends()
    pipeline = Pipeline(backends, DirectoryStore(tmp_path), tmp_path)
    await pipeline.run(fetch_talk, Request())
    (tmp_path / "steps" / "transcribe.json").write_text('{"step": "transcribe", "par')
    again = await pipeline.run(fetch_talk, Request())
    assert again.reused == ["audio"]
    assert transcriber.calls == 2
