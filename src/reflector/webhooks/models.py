from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reflector.db.base import Base, UTCDateTime


class Outcome(StrEnum):
    applied = "applied"  # changed meeting state
    stale = "stale"  # older than what was already applied: kept for the record only
    unmatched = "unmatched"  # names a meeting this service does not know
    ignored = "ignored"  # a type that needs no action
    queued = "queued"  # kept for a later stage (recording intake)


class WebhookEvent(Base):
    """Every verified event, once (its id is the platform's event id). The audit log."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # The meeting the event named, kept after that meeting is deleted. No foreign key: its
    # check locked the meeting's row for every event (migration 0009 says why that hurt).
    meeting_id: Mapped[str | None] = mapped_column(String(40), index=True)
    outcome: Mapped[str] = mapped_column(String(20))
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    payload: Mapped[str] = mapped_column(Text)


class WebhookRejection(Base):
    """A webhook request that failed verification (rate limited, so this stays small)."""

    __tablename__ = "webhook_rejections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(50))
    client: Mapped[str | None] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
