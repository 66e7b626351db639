from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class RecordingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    bucket: str
    key: str
    meeting_id: str | None
    room_id: str | None
    status: str
    error: str | None
    size: int | None
    started_at: datetime | None
    duration: float | None
    transcript_id: str | None
    source: str
    announcements: int
    attempts: int
    created_at: datetime
    updated_at: datetime
    processed_at: datetime | None
    # When retention deleted the file from its bucket (download then answers 410).
    object_deleted_at: datetime | None
