from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from reflector.db.base import Base, UTCDateTime, new_id, utcnow


class Meeting(Base):
    __tablename__ = "meetings"
    __table_args__ = (
        UniqueConstraint("platform", "platform_meeting_id"),
        # At most one active meeting per room, enforced by the database.
        Index(
            "uq_meetings_active_room",
            "room_id",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mtg"))
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(32))
    platform_meeting_id: Mapped[str] = mapped_column(String(100))
    # The platform's room name ("/standup-<uuid>" on Whereby): webhooks and recording keys
    # name meetings by it.
    platform_room_name: Mapped[str] = mapped_column(String(200), unique=True)
    room_url: Mapped[str] = mapped_column(Text)
    host_room_url: Mapped[str | None] = mapped_column(Text)
    start_date: Mapped[datetime] = mapped_column(UTCDateTime)
    end_date: Mapped[datetime] = mapped_column(UTCDateTime)
    room_settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    num_clients: Mapped[int] = mapped_column(Integer, default=0)
    num_clients_by_role: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    # createdAt of the participant event the counts come from: an older event never
    # overwrites a newer one, whatever order they arrive in.
    counts_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    end_reason: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("meeting_id", "participant_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meeting_id: Mapped[str] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"))
    participant_id: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(String(500))
    role_name: Mapped[str | None] = mapped_column(String(50))
    external_id: Mapped[str | None] = mapped_column(String(500))
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Whether the newest event seen for this participant was a join, and that event's time.
    present: Mapped[bool] = mapped_column(Boolean)
    state_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MeetingSession(Base):
    __tablename__ = "meeting_sessions"
    __table_args__ = (UniqueConstraint("meeting_id", "session_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meeting_id: Mapped[str] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MeetingClaim(Base):
    """A short-lived claim on creating a room's meeting, so concurrent requests (on any
    replica) make one platform call, not several."""

    __tablename__ = "meeting_claims"

    room_id: Mapped[str] = mapped_column(
        ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True
    )
    claim_id: Mapped[str] = mapped_column(String(40))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
