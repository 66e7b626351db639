from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)

from reflector.inputs import StrictInput
from reflector.platforms.registry import DEFAULT_PLATFORM, is_known_platform, platform_names
from reflector.room_webhooks.urls import WebhookUrl
from reflector.rooms.models import RecordingTrigger, RecordingType, RoomMode

ROOM_NAME_PATTERN = re.compile(r"^[a-z0-9-]{1,39}$")


def _room_name(value: str) -> str:
    if not ROOM_NAME_PATTERN.fullmatch(value):
        raise ValueError(
            "a room name is 1-39 characters of lower-case letters, digits and hyphens "
            f"(got {value!r})"
        )
    return value


def _platform(value: str) -> str:
    if not is_known_platform(value):
        raise ValueError(f"unknown platform {value!r}; available: {', '.join(platform_names())}")
    return value


RoomName = Annotated[StrictStr, AfterValidator(_room_name)]
PlatformName = Annotated[StrictStr, AfterValidator(_platform)]
# Retention override in days; null: the RETENTION_* setting applies.
RetentionDays = Annotated[StrictInt, Field(ge=0, le=36500)]


class RoomCreate(StrictInput):
    name: RoomName
    platform: PlatformName = DEFAULT_PLATFORM
    recording_type: RecordingType = RecordingType.cloud
    recording_trigger: RecordingTrigger = RecordingTrigger.automatic_2nd_participant
    is_locked: StrictBool = False
    room_mode: RoomMode = RoomMode.normal
    retention_recording_days: RetentionDays | None = None
    retention_audio_days: RetentionDays | None = None
    retention_transcript_days: RetentionDays | None = None
    # Where the room's events are POSTed; its first URL gets a signing secret, shown once.
    webhook_url: WebhookUrl | None = None


class RoomUpdate(StrictInput):
    non_nullable: ClassVar[frozenset[str]] = frozenset(
        {"name", "platform", "recording_type", "recording_trigger", "is_locked", "room_mode"}
    )

    name: RoomName | None = None
    platform: PlatformName | None = None
    recording_type: RecordingType | None = None
    recording_trigger: RecordingTrigger | None = None
    is_locked: StrictBool | None = None
    room_mode: RoomMode | None = None
    retention_recording_days: RetentionDays | None = None
    retention_audio_days: RetentionDays | None = None
    retention_transcript_days: RetentionDays | None = None
    webhook_url: WebhookUrl | None = None  # null removes it (the secret is kept)


def _is_set(secret: object) -> bool:
    return secret is not None


def _is_none(value: object) -> bool:
    return value is None


class RoomOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    owner_id: str
    platform: str
    recording_type: RecordingType
    recording_trigger: RecordingTrigger
    is_locked: bool
    room_mode: RoomMode
    retention_recording_days: int | None
    retention_audio_days: int | None
    retention_transcript_days: int | None
    webhook_url: str | None
    # Only whether the room has a signing secret: read from the room's secret, never showing it.
    has_webhook_secret: Annotated[bool, BeforeValidator(_is_set)] = Field(
        validation_alias="webhook_secret"
    )
    # The secret itself, in the one response that generated it (with_secret); omitted from
    # every other. Never read from the room.
    webhook_secret: str | None = Field(
        None, validation_alias="issued_webhook_secret", exclude_if=_is_none
    )
    created_at: datetime
    updated_at: datetime

    def with_secret(self, secret: str | None) -> RoomOut:
        return self.model_copy(update={"webhook_secret": secret})
