from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column

from reflector.db.base import Base, UTCDateTime, new_id, utcnow
from reflector.transcripts.models import Transcript


class RecordingStatus(StrEnum):
    pending = "pending"  # stored, waiting for its job
    processing = "processing"
    completed = "completed"
    failed = "failed"  # `error` says why; retry puts it back to pending
    unmatched = "unmatched"  # its key names no meeting we know; visible to admins


class Recording(Base):
    """One object in a recording bucket, however many times and ways it was announced."""

    __tablename__ = "recordings"
    __table_args__ = (UniqueConstraint("bucket", "key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("rec"))
    bucket: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(1024))
    meeting_id: Mapped[str | None] = mapped_column(
        ForeignKey("meetings.id", ondelete="SET NULL"), index=True
    )
    room_id: Mapped[str | None] = mapped_column(
        ForeignKey("rooms.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), index=True)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # The recording's start, from its object key.
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    duration: Mapped[float | None] = mapped_column(Float, default=None)
    source: Mapped[str] = mapped_column(String(20))
    announcements: Mapped[int] = mapped_column(Integer, default=1)
    # Set by whoever enqueues the job, in the same statement that checks nobody did: one job.
    job_enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # When retention removed the raw object from its bucket (the row stays, as the record).
    object_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


# Its transcript, once its first job started: read from transcripts.recording_id, the one link.
Recording.transcript_id = column_property(
    select(Transcript.id).where(Transcript.recording_id == Recording.id).scalar_subquery()
)
