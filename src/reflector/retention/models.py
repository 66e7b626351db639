from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reflector.db.base import Base, UTCDateTime


class RetentionDeletion(Base):
    """One deletion made by the retention policy (or by deleting a transcript): what, and
    why. The table is the audit log; rows are never updated."""

    __tablename__ = "retention_deletions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # "recording" (the raw file), "audio" (derived audio) or "transcript".
    kind: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    # Where it was: s3://bucket/key, file:///..., or the transcript's storage prefix.
    target: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
