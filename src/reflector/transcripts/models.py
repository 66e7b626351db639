from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reflector.db.base import Base, UTCDateTime, new_id, utcnow


class TranscriptStatus(StrEnum):
    processing = "processing"
    ended = "ended"
    error = "error"  # `error` says what is wrong


class ShareMode(StrEnum):
    private = "private"  # the owner only
    room = "room"  # every signed-in user of this Reflector
    public = "public"  # anyone with the link, signed in or not (read only)


class Transcript(Base):
    """The pipeline's result for one recording (or, later, one upload)."""

    __tablename__ = "transcripts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("trn"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    recording_id: Mapped[str | None] = mapped_column(
        ForeignKey("recordings.id", ondelete="SET NULL"), unique=True
    )
    meeting_id: Mapped[str | None] = mapped_column(
        ForeignKey("meetings.id", ondelete="SET NULL"), index=True
    )
    room_id: Mapped[str | None] = mapped_column(
        ForeignKey("rooms.id", ondelete="SET NULL"), index=True
    )
    source: Mapped[str] = mapped_column(String(20))  # "recording" or "upload"
    share_mode: Mapped[str] = mapped_column(
        String(10), default=ShareMode.private.value, server_default=ShareMode.private.value
    )
    # Uploads: the name the file was uploaded under, and its key in derived storage.
    filename: Mapped[str | None] = mapped_column(String(255), default=None)
    source_key: Mapped[str | None] = mapped_column(String(1024), default=None)
    status: Mapped[str] = mapped_column(String(20), index=True)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # The step running now, or the last one that ran; `steps` maps each finished step to the
    # storage key of its output.
    step: Mapped[str | None] = mapped_column(String(20), default=None)
    steps: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    storage_prefix: Mapped[str] = mapped_column(String(1024))
    title: Mapped[str | None] = mapped_column(Text, default=None)
    short_summary: Mapped[str | None] = mapped_column(Text, default=None)
    language: Mapped[str | None] = mapped_column(String(10), default=None)
    duration: Mapped[float | None] = mapped_column(Float, default=None)
    # The whole result (TranscriptDocument as JSON) once ended.
    document: Mapped[str | None] = mapped_column(Text, default=None)
    audio_key: Mapped[str | None] = mapped_column(String(1024), default=None)
    playback_key: Mapped[str | None] = mapped_column(String(1024), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # When retention removed the derived audio (audio_key and playback_key are then None).
    audio_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Bytes of the derived objects under storage_prefix, as of the last change to them.
    stored_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
