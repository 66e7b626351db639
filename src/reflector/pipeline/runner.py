"""Runs the pipeline's steps in order, each output stored before the next step starts.

A step whose stored output was made with the same parameters, after no earlier step ran again,
is skipped and its output read back; the first step that runs makes every later one run too.
So a re-run of a finished pipeline does nothing, and a run that died (worker killed, machine
rebooted) resumes at the step it was in.

The models and the text analysis are blocking: they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from reflector.logs import get_logger
from reflector.pipeline.assemble import assemble
from reflector.pipeline.audio import AudioError, decode_audio
from reflector.pipeline.diarize import Diarizer, DiarizerError
from reflector.pipeline.export import EXPORT_FORMATS
from reflector.pipeline.naming import name_speakers
from reflector.pipeline.store import StepStore
from reflector.pipeline.topics import TextAnalyzer
from reflector.pipeline.transcribe import Transcriber, TranscriberError
from reflector.pipeline.types import (
    Assembly,
    Diarization,
    PresenceInterval,
    Summary,
    Topic,
    TranscriptDocument,
    Transcription,
)

STEPS: tuple[str, ...] = (
    "audio",
    "transcribe",
    "diarize",
    "assemble",
    "speakers",
    "topics",
    "summary",
    "exports",
)

_log = get_logger("reflector.pipeline")

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


class PipelineError(Exception):
    """A step could not finish for a reason the user can act on; str() says what is wrong."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


@dataclass(frozen=True)
class Backends:
    transcriber: Transcriber
    diarizer: Diarizer
    analyzer: TextAnalyzer


@dataclass(frozen=True)
class Request:
    """What is known about the recording besides its sound."""

    language: str | None = None  # None: detect
    num_speakers: int | None = None  # from the meeting's participants, when they tell it
    presence: tuple[PresenceInterval, ...] | None = None  # None: not a room recording


class _Output(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AudioOutput(_Output):
    duration: float
    peaks: list[float]
    wav: str  # store keys
    playback: str


class TopicList(_Output):
    topics: list[Topic]


class ExportKeys(_Output):
    files: dict[str, str]  # format -> store key


class _Stored(BaseModel):
    """A step's output as stored, with the parameters it was made with."""

    step: str
    params: dict[str, Any]
    value: dict[str, Any]


@dataclass
class PipelineResult:
    document: TranscriptDocument
    audio: AudioOutput
    exports: ExportKeys
    reused: list[str] = field(default_factory=list)  # steps whose stored output was used
    seconds: dict[str, float] = field(default_factory=dict)  # per step that ran


OnProgress = Callable[[str, float], None]  # step, fraction of it done (from any thread)
# step, then None when it starts running, or the key of its output once stored or reused
OnStep = Callable[[str, str | None], Awaitable[None]]
FetchSource = Callable[[Path], Awaitable[Path]]  # downloads the recording into a folder


def _ignore_progress(_step: str, _fraction: float) -> None:
    return None


class Pipeline:
    def __init__(
        self,
        backends: Backends,
        store: StepStore,
        workdir: Path,
        *,
        on_progress: OnProgress = _ignore_progress,
        on_step: OnStep | None = None,
    ) -> None:
        self.backends = backends
        self.store = store
        self.workdir = workdir
        self.on_progress = on_progress
        self.on_step = on_step
        self._dirty = False
        self._result_reused: list[str] = []
        self._seconds: dict[str, float] = {}

    async def run(self, fetch_source: FetchSource, request: Request) -> PipelineResult:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._dirty = False
        self._result_reused = []
        self._seconds = {}
        b = self.backends

        audio = await self._step("audio", {}, AudioOutput, lambda: self._decode(fetch_source))
        wav: Path | None = None

        async def local_wav() -> Path:
            nonlocal wav
            if wav is None:
                wav = await self.store.local_copy(audio.wav, self.workdir)
            return wav

        async def transcribe() -> Transcription:
            path = await local_wav()
            return await self._blocking(
                "transcribe",
                lambda: b.transcriber.transcribe(
                    path, language=request.language, progress=self._progress("transcribe")
                ),
            )

        transcription = await self._step(
            "transcribe",
            {"backend": b.transcriber.name, "language": request.language},
            Transcription,
            transcribe,
        )

        async def diarize() -> Diarization:
            path = await local_wav()
            return await self._blocking(
                "diarize",
                lambda: b.diarizer.diarize(
                    path, num_speakers=request.num_speakers, progress=self._progress("diarize")
                ),
            )

        diarization = await self._step(
            "diarize",
            {"backend": b.diarizer.name, "num_speakers": request.num_speakers},
            Diarization,
            diarize,
        )

        async def assembled() -> Assembly:
            return assemble(transcription, diarization)

        assembly = await self._step("assemble", {}, Assembly, assembled)

        presence = list(request.presence or ())

        async def named() -> Assembly:
            return name_speakers(assembly, presence) if presence else assembly

        presence_params = [p.model_dump() for p in presence]
        assembly = await self._step("speakers", {"presence": presence_params}, Assembly, named)

        async def topics() -> TopicList:
            found = await self._blocking(
                "topics",
                lambda: b.analyzer.topics(
                    assembly.segments, assembly.speakers, progress=self._progress("topics")
                ),
            )
            return TopicList(topics=found)

        topic_list = await self._step("topics", {"backend": b.analyzer.name}, TopicList, topics)

        async def summarize() -> Summary:
            return await self._blocking(
                "summary",
                lambda: b.analyzer.summarize(
                    assembly.segments,
                    assembly.speakers,
                    topic_list.topics,
                    progress=self._progress("summary"),
                ),
            )

        summary = await self._step("summary", {"backend": b.analyzer.name}, Summary, summarize)

        document = TranscriptDocument(
            duration=audio.duration,
            language=transcription.language,
            title=summary.title,
            short_summary=summary.short_summary,
            long_summary=summary.long_summary,
            action_items=summary.action_items,
            topics=topic_list.topics,
            speakers=assembly.speakers,
            segments=assembly.segments,
            words=assembly.words,
        )

        async def exports() -> ExportKeys:
            files: dict[str, str] = {}
            for fmt, spec in EXPORT_FORMATS.items():
                text = spec.render(document)
                files[fmt] = await self.store.save(
                    f"transcript.{spec.extension}", text.encode(), spec.media_type
                )
            return ExportKeys(files=files)

        export_keys = await self._step(
            "exports", {"formats": sorted(EXPORT_FORMATS)}, ExportKeys, exports
        )
        return PipelineResult(
            document=document,
            audio=audio,
            exports=export_keys,
            reused=self._result_reused,
            seconds=self._seconds,
        )

    async def _decode(self, fetch_source: FetchSource) -> AudioOutput:
        source = await fetch_source(self.workdir)
        self.on_progress("audio", 0.0)
        decoded = await self._blocking("audio", lambda: decode_audio(source, self.workdir))
        self.on_progress("audio", 1.0)
        wav = await self.store.save_file("audio.wav", decoded.wav_path, "audio/wav")
        playback = await self.store.save_file("playback.m4a", decoded.playback_path, "audio/mp4")
        return AudioOutput(
            duration=decoded.duration, peaks=decoded.peaks, wav=wav, playback=playback
        )

    async def _step(
        self,
        step: str,
        params: dict[str, Any],
        model: type[M],
        produce: Callable[[], Awaitable[M]],
    ) -> M:
        params = json.loads(json.dumps(params))  # what the stored copy will compare equal to
        name = f"steps/{step}.json"
        if not self._dirty:
            reused = await self._reuse(name, step, params, model)
            if reused is not None:
                self._result_reused.append(step)
                self.on_progress(step, 1.0)
                if self.on_step is not None:
                    await self.on_step(step, self.store.key(name))
                return reused
        self._dirty = True
        if self.on_step is not None:
            await self.on_step(step, None)
        started = time.perf_counter()
        self.on_progress(step, 0.0)
        value = await produce()
        stored = _Stored(step=step, params=params, value=value.model_dump(mode="json"))
        key = await self.store.save(name, stored.model_dump_json().encode(), "application/json")
        self._seconds[step] = round(time.perf_counter() - started, 3)
        self.on_progress(step, 1.0)
        _log.info("pipeline step done", step=step, seconds=self._seconds[step])
        if self.on_step is not None:
            await self.on_step(step, key)
        return value

    async def _reuse(
        self, name: str, step: str, params: dict[str, Any], model: type[M]
    ) -> M | None:
        raw = await self.store.load(name)
        if raw is None:
            return None
        try:
            stored = _Stored.model_validate_json(raw)
            if stored.step != step or stored.params != params:
                return None
            return model.model_validate(stored.value)
        except ValidationError:
            # Written by an older version, or damaged: make it again.
            _log.warning("stored step output unreadable, running the step again", step=step)
            return None

    def _progress(self, step: str) -> Callable[[float], None]:
        def report(fraction: float) -> None:
            self.on_progress(step, min(max(fraction, 0.0), 1.0))

        return report

    async def _blocking(self, step: str, call: Callable[[], R]) -> R:
        try:
            return await asyncio.to_thread(call)
        except (AudioError, TranscriberError, DiarizerError) as exc:
            raise PipelineError(step, str(exc)) from exc
