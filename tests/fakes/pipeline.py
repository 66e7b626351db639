"""Pipeline backends faked at their Protocol seams: scripted words and turns, counted calls,
and a way to make a step fail or the worker "die" at a chosen step."""

from __future__ import annotations

import wave
from pathlib import Path

from reflector.pipeline.diarize import DiarizerError
from reflector.pipeline.runner import Backends
from reflector.pipeline.types import (
    Diarization,
    Progress,
    Segment,
    Speaker,
    SpeakerTurn,
    Summary,
    Topic,
    Transcription,
    Word,
)


class WorkerDied(BaseException):
    """What a killed worker looks like to the code after the step it was in: nothing more
    runs. A BaseException, so no `except Exception` in the job can swallow it."""


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


class ScriptedTranscriber:
    name = "scripted"

    def __init__(self, text: str = "hello there this is a test of the pipeline") -> None:
        self.text = text
        self.calls = 0

    def transcribe(self, wav: Path, *, language: str | None, progress: Progress) -> Transcription:
        self.calls += 1
        duration = wav_seconds(wav)
        words = self.text.split()
        step = duration / max(len(words), 1)
        progress(1.0)
        return Transcription(
            language=language or "en",
            duration=duration,
            words=[
                Word(text=w, start=round(i * step, 3), end=round((i + 0.8) * step, 3))
                for i, w in enumerate(words)
            ],
            backend=self.name,
        )


class ScriptedDiarizer:
    """Two speakers taking halves, or one; can fail or kill the worker on its next call."""

    name = "scripted"

    def __init__(self, speakers: int = 2) -> None:
        self.speakers = speakers
        self.calls = 0
        self.fail_with: str | None = None
        self.die = False
        self.seen_num_speakers: list[int | None] = []

    def diarize(self, wav: Path, *, num_speakers: int | None, progress: Progress) -> Diarization:
        self.calls += 1
        self.seen_num_speakers.append(num_speakers)
        if self.die:
            self.die = False
            raise WorkerDied
        if self.fail_with:
            raise DiarizerError(self.fail_with)
        duration = wav_seconds(wav)
        part = duration / self.speakers
        return Diarization(
            turns=[
                SpeakerTurn(start=i * part, end=(i + 1) * part, speaker=i)
                for i in range(self.speakers)
            ],
            speakers=self.speakers,
            backend=self.name,
        )


class ScriptedAnalyzer:
    name = "scripted"

    def __init__(self) -> None:
        self.calls = 0

    def topics(
        self, segments: list[Segment], speakers: list[Speaker], *, progress: Progress
    ) -> list[Topic]:
        self.calls += 1
        if not segments:
            return []
        return [
            Topic(
                title="Everything",
                summary=segments[0].text,
                start=segments[0].start,
                end=segments[-1].end,
            )
        ]

    def summarize(
        self,
        segments: list[Segment],
        speakers: list[Speaker],
        topics: list[Topic],
        *,
        progress: Progress,
    ) -> Summary:
        self.calls += 1
        text = " ".join(s.text for s in segments)
        return Summary(
            title=text.split(".")[0][:40] or "Untitled recording",
            short_summary=text[:200],
            long_summary="## Summary\n\n" + text,
            backend=self.name,
        )


def scripted_backends(speakers: int = 2) -> tuple[Backends, ScriptedTranscriber, ScriptedDiarizer]:
    transcriber = ScriptedTranscriber()
    diarizer = ScriptedDiarizer(speakers)
    return (
        Backends(transcriber=transcriber, diarizer=diarizer, analyzer=ScriptedAnalyzer()),
        transcriber,
        diarizer,
    )
