from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from reflector.pipeline.types import (
    ActionItem,
    Segment,
    Speaker,
    Topic,
    TranscriptDocument,
    Word,
)
from reflector.transcripts.models import Transcript


class TranscriptOut(BaseModel):
    """A transcript with its status; the content fields are empty until it has `ended`."""

    id: str
    status: str  # processing | ended | error
    error: str | None
    step: str | None  # the step running now (processing) or that ran last
    recording_id: str | None
    meeting_id: str | None
    room_id: str | None
    created_at: datetime
    ended_at: datetime | None
    duration: float | None
    language: str | None
    title: str | None
    short_summary: str | None
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
        return cls.model_validate(
            {
                "id": row.id,
                "status": row.status,
                "error": row.error,
                "step": row.step,
                "recording_id": row.recording_id,
                "meeting_id": row.meeting_id,
                "room_id": row.room_id,
                "created_at": row.created_at,
                "ended_at": row.ended_at,
                "duration": row.duration,
                "language": row.language,
                "title": row.title,
                "short_summary": row.short_summary,
                "long_summary": None,
                "action_items": [],
                "topics": [],
                "speakers": [],
                "segments": [],
                "words": [],
                **content,
            }
        )
