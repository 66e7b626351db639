from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from reflector.inputs import StrictInput
from reflector.pipeline.types import (
    ActionItem,
    Segment,
    Speaker,
    Topic,
    TranscriptDocument,
    Word,
)
from reflector.transcripts.models import Transcript

ShareModeName = Literal["private", "room", "public"]
StatusName = Literal["processing", "ended", "error"]

TITLE_MAX = 200
SPEAKER_NAME_MAX = 100


class TranscriptSummary(BaseModel):
    """A transcript in a listing: its status and headline, without its content."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    status: str  # processing | ended | error
    error: str | None
    step: str | None
    source: str  # recording | upload
    filename: str | None  # uploads: the name the file was uploaded under
    share_mode: str  # private | room | public
    recording_id: str | None
    meeting_id: str | None
    room_id: str | None
    created_at: datetime
    ended_at: datetime | None
    # When retention deleted its audio (the audio and waveform routes then answer 410).
    audio_deleted_at: datetime | None
    duration: float | None
    language: str | None
    title: str | None
    short_summary: str | None


class TranscriptOut(TranscriptSummary):
    """A transcript with its status; the content fields are empty until it has `ended`."""

    long_summary: str | None
    action_items: list[ActionItem]
    topics: list[Topic]
    speakers: list[Speaker]
    segments: list[Segment]
    words: list[Word]

    @classmethod
    def of(cls, row: Transcript) -> TranscriptOut:
        content: dict[str, object] = {}
        if row.document:
            doc = TranscriptDocument.model_validate_json(row.document)
            content = doc.model_dump(
                include={
                    "long_summary",
                    "action_items",
                    "topics",
                    "speakers",
                    "segments",
                    "words",
                }
            )
        summary = TranscriptSummary.model_validate(row).model_dump()
        return cls.model_validate(
            {
                **summary,
                "long_summary": None,
                "action_items": [],
                "topics": [],
                "speakers": [],
                "segments": [],
                "words": [],
                **content,
            }
        )


class Waveform(BaseModel):
    duration: float  # seconds
    peaks: list[float]  # evenly spaced over the duration, 0.0 to 1.0


def _trimmed(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("must not be empty or only spaces")
        if len(value) > limit:
            raise ValueError(f"must be at most {limit} characters (got {len(value)})")
        return value

    return AfterValidator(check)


Title = Annotated[StrictStr, _trimmed(TITLE_MAX)]
SpeakerName = Annotated[StrictStr, _trimmed(SPEAKER_NAME_MAX)]


class SpeakerRename(StrictInput):
    id: StrictInt
    name: SpeakerName


class SpeakerMerge(BaseModel):
    """Every word and segment of speaker `from` becomes speaker `into`'s."""

    model_config = ConfigDict(extra="forbid")

    from_: StrictInt = Field(alias="from")
    into: StrictInt


class TranscriptUpdate(StrictInput):
    """PATCH /v1/transcripts/{id}: fields left out keep their value."""

    non_nullable: ClassVar[frozenset[str]] = frozenset({"title", "share_mode", "speakers", "merge"})

    title: Title | None = None
    share_mode: ShareModeName | None = None
    speakers: list[SpeakerRename] | None = None
    merge: list[SpeakerMerge] | None = None
