"""The values that flow between pipeline steps. Every step's output is one of these models,
persisted as JSON so that a re-run can skip the step; times are seconds from the start of the
audio. Speaker ids are small integers from 0, in order of first appearance."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

# Called with the fraction of the current step that is done, 0.0 to 1.0.
Progress = Callable[[float], None]


def no_progress(_fraction: float) -> None:
    return None


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Word(_Value):
    text: str  # as spoken, punctuation attached, no surrounding whitespace
    start: float
    end: float
    probability: float | None = None
    speaker: int | None = None


class Transcription(_Value):
    language: str
    duration: float
    words: list[Word]
    backend: str  # e.g. "faster-whisper:tiny.en", for the record


class SpeakerTurn(_Value):
    start: float
    end: float
    speaker: int


class Diarization(_Value):
    turns: list[SpeakerTurn]  # sorted by start
    speakers: int  # distinct speaker ids in turns
    backend: str


class Segment(_Value):
    """A speaker turn as read: consecutive words of one speaker."""

    speaker: int
    start: float
    end: float
    text: str


class Speaker(_Value):
    id: int
    name: str  # a participant's display name, or "Speaker N" (N = id + 1)
    named_from: str | None = None  # why we believe the name, e.g. "only participant present"


class Assembly(_Value):
    words: list[Word]  # every word with its speaker set
    segments: list[Segment]
    speakers: list[Speaker]


class PresenceInterval(_Value):
    """When one participant was in the meeting, relative to the recording's start (may start
    before 0; `end` None means still there when the recording ended)."""

    participant_id: str
    name: str
    start: float
    end: float | None


class Topic(_Value):
    title: str
    summary: str
    start: float
    end: float


class ActionItem(_Value):
    text: str
    owner: str | None = None
    start: float | None = None  # when it was said, when known


class Summary(_Value):
    title: str
    short_summary: str  # one paragraph
    long_summary: str  # Markdown
    action_items: list[ActionItem] = Field(default_factory=list)
    backend: str = ""


class TranscriptDocument(_Value):
    """The whole result: what `reflector process` prints as JSON and the API serves."""

    duration: float
    language: str
    title: str
    short_summary: str
    long_summary: str
    action_items: list[ActionItem]
    topics: list[Topic]
    speakers: list[Speaker]
    segments: list[Segment]
    words: list[Word]
