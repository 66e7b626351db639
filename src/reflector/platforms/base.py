"""The seam between rooms/meetings and a video platform.

A platform creates and ends meetings, lists a room's sessions, and turns its webhooks into
`PlatformEvent`s. Rooms and meetings code only sees these types; each platform package (e.g.
`whereby/`) implements `VideoPlatform` and registers itself in the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from reflector.errors import AppError


@dataclass(frozen=True)
class MeetingRequest:
    """What a room asks of its platform when it needs a meeting."""

    room_name: str
    recording_type: str
    recording_trigger: str
    is_locked: bool
    room_mode: str
    end_date: datetime


@dataclass(frozen=True)
class CreatedMeeting:
    platform_meeting_id: str
    # The platform's name for the meeting room (for Whereby: "/<prefix><uuid>").
    room_name: str
    room_url: str
    host_room_url: str | None
    start_date: datetime
    end_date: datetime


@dataclass(frozen=True)
class PlatformSession:
    session_id: str
    started_at: datetime
    ended_at: datetime | None


class EventKind(StrEnum):
    participant_joined = "participant_joined"
    participant_left = "participant_left"
    session_started = "session_started"
    session_ended = "session_ended"
    recording_finished = "recording_finished"
    other = "other"


@dataclass(frozen=True)
class ParticipantChange:
    participant_id: str
    display_name: str | None
    role_name: str | None
    external_id: str | None
    # People in the room after this event (the platform's own services, such as a recorder,
    # are not counted here; num_clients_by_role has them).
    num_clients: int
    num_clients_by_role: dict[str, int]


@dataclass(frozen=True)
class PlatformEvent:
    """One verified webhook event, in the platform-neutral form the meetings code applies."""

    event_id: str
    type: str  # the platform's own event type, kept for the audit log
    kind: EventKind
    created_at: datetime
    meeting_id: str | None  # the platform's meeting id
    room_name: str | None  # the platform's room name
    participant: ParticipantChange | None = None
    session_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class WebhookRejected(AppError):
    """A webhook request that failed verification. `reason` is a short label for counting."""

    reason = "rejected"


class MissingSignature(WebhookRejected):
    status_code = 400
    code = "missing_signature"
    reason = "missing_signature"


class MalformedSignature(WebhookRejected):
    status_code = 400
    code = "malformed_signature"
    reason = "malformed_signature"


class BadSignature(WebhookRejected):
    status_code = 401
    code = "bad_signature"
    reason = "bad_signature"


class StaleSignature(WebhookRejected):
    status_code = 401
    code = "signature_out_of_window"
    reason = "out_of_window"


class WebhookSecretMissing(WebhookRejected):
    status_code = 503
    code = "webhook_secret_not_configured"
    reason = "secret_not_configured"


class InvalidWebhookPayload(AppError):
    status_code = 400
    code = "invalid_payload"


class VideoPlatform(Protocol):
    """Everything rooms and meetings need from a video platform."""

    name: str

    async def create_meeting(self, request: MeetingRequest) -> CreatedMeeting: ...

    async def end_meeting(self, platform_meeting_id: str) -> None: ...

    async def list_sessions(self, room_name: str) -> list[PlatformSession]: ...

    def verify_webhook(self, body: bytes, headers: Mapping[str, str], now: float) -> None:
        """Raise a WebhookRejected subclass when the request is not authentic or fresh."""

    def parse_webhook(self, body: bytes) -> PlatformEvent:
        """Raise InvalidWebhookPayload when the verified body is not an event we understand."""

    async def check_api(self) -> str:
        """'ok', 'unauthorized', 'not_configured' or 'unreachable'."""
        ...
