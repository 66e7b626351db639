from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Enum, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from reflector.db.base import Base, UTCDateTime, new_id, utcnow


class RecordingType(StrEnum):
    none = "none"
    local = "local"
    cloud = "cloud"


class RecordingTrigger(StrEnum):
    none = "none"
    prompt = "prompt"
    automatic = "automatic"
    automatic_2nd_participant = "automatic-2nd-participant"


class RoomMode(StrEnum):
    normal = "normal"
    group = "group"


def _enum(enum: type[StrEnum], name: str) -> Enum:
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
    )


class Room(Base):
    __tablename__ = "rooms"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("room"))
    name: Mapped[str] = mapped_column(String(39), unique=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(32))
    recording_type: Mapped[RecordingType] = mapped_column(_enum(RecordingType, "recording_type"))
    recording_trigger: Mapped[RecordingTrigger] = mapped_column(
        _enum(RecordingTrigger, "recording_trigger")
    )
    is_locked: Mapped[bool] = mapped_column(Boolean)
    room_mode: Mapped[RoomMode] = mapped_column(_enum(RoomMode, "room_mode"))
    # Outgoing webhooks: where this room's events go, and the secret that signs them.
    webhook_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    webhook_secret: Mapped[str | None] = mapped_column(String(100), default=None)
    # Retention overrides in days; None: the RETENTION_* setting applies.
    retention_recording_days: Mapped[int | None] = mapped_column(Integer, default=None)
    retention_audio_days: Mapped[int | None] = mapped_column(Integer, default=None)
    retention_transcript_days: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
