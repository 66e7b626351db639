"""Whereby webhook payloads: the envelope and the data of the event types we act on."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, ValidationError

from reflector.platforms.base import (
    EventKind,
    InvalidWebhookPayload,
    ParticipantChange,
    PlatformEvent,
)

_KINDS = {
    "room.client.joined": EventKind.participant_joined,
    "room.client.left": EventKind.participant_left,
    "room.session.started": EventKind.session_started,
    "room.session.ended": EventKind.session_ended,
    "recording.finished": EventKind.recording_finished,
}

Text = Annotated[str, Field(max_length=500)]

# Whereby counts these clients in numClients, but they are services, not people: a cloud
# recording joins as "recorder". Reflector's num_clients counts people; the per-role counts
# keep everything.
BOT_ROLES = frozenset({"recorder", "streamer", "captioner", "assistant"})


def people_count(num_clients: int, by_role: dict[str, int]) -> int:
    bots = sum(count for role, count in by_role.items() if role in BOT_ROLES)
    return max(num_clients - bots, 0)


class _Lenient(BaseModel):
    # Whereby adds fields at any time: unknown ones are ignored.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Envelope(_Lenient):
    id: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
    api_version: Annotated[str | None, Field(alias="apiVersion")] = None
    created_at: Annotated[AwareDatetime, Field(alias="createdAt")]
    type: Annotated[str, Field(min_length=1, max_length=100)]
    data: dict[str, Any]


class ClientEventData(_Lenient):
    meeting_id: Annotated[Text | None, Field(alias="meetingId")] = None
    room_name: Annotated[Text | None, Field(alias="roomName")] = None
    room_session_id: Annotated[Text | None, Field(alias="roomSessionId")] = None
    participant_id: Annotated[Text, Field(alias="participantId", min_length=1)]
    display_name: Annotated[Text | None, Field(alias="displayName")] = None
    external_id: Annotated[Text | None, Field(alias="externalId")] = None
    role_name: Annotated[Text | None, Field(alias="roleName")] = None
    num_clients: Annotated[StrictInt, Field(alias="numClients", ge=0)]
    num_clients_by_role: Annotated[
        dict[str, Annotated[StrictInt, Field(ge=0)]], Field(alias="numClientsByRoleName")
    ] = Field(default_factory=dict)


class SessionEventData(_Lenient):
    meeting_id: Annotated[Text | None, Field(alias="meetingId")] = None
    room_name: Annotated[Text | None, Field(alias="roomName")] = None
    room_session_id: Annotated[Text, Field(alias="roomSessionId", min_length=1)]


class RecordingFinishedData(_Lenient):
    meeting_id: Annotated[Text | None, Field(alias="meetingId")] = None
    room_name: Annotated[Text | None, Field(alias="roomName")] = None
    recording_id: Annotated[Text | None, Field(alias="recordingId")] = None
    filename: Text | None = None
    status: Text | None = None


class OtherEventData(_Lenient):
    meeting_id: Annotated[Text | None, Field(alias="meetingId")] = None
    room_name: Annotated[Text | None, Field(alias="roomName")] = None


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def parse_event(body: bytes) -> PlatformEvent:
    """Parse a verified webhook body; InvalidWebhookPayload says what is wrong with it."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidWebhookPayload(
            "The signature is valid but the body is not JSON; expected a Whereby event."
        ) from None
    if not isinstance(raw, dict):
        raise InvalidWebhookPayload("The body must be a JSON object (a Whereby event envelope).")
    try:
        envelope = Envelope.model_validate(raw)
        kind = _KINDS.get(envelope.type, EventKind.other)
        return _event(envelope, kind)
    except ValidationError as exc:
        raise InvalidWebhookPayload(
            f"The signature is valid but the event is not what Whereby sends ({_problem(exc)})."
        ) from None


def _event(envelope: Envelope, kind: EventKind) -> PlatformEvent:
    common: dict[str, Any] = {
        "event_id": envelope.id,
        "type": envelope.type,
        "kind": kind,
        "created_at": envelope.created_at,
        "data": envelope.data,
    }
    if kind in (EventKind.participant_joined, EventKind.participant_left):
        client = ClientEventData.model_validate(envelope.data)
        return PlatformEvent(
            **common,
            meeting_id=client.meeting_id,
            room_name=client.room_name,
            session_id=client.room_session_id,
            participant=ParticipantChange(
                participant_id=client.participant_id,
                display_name=client.display_name,
                role_name=client.role_name,
                external_id=client.external_id,
                num_clients=people_count(client.num_clients, client.num_clients_by_role),
                num_clients_by_role=dict(client.num_clients_by_role),
            ),
        )
    if kind in (EventKind.session_started, EventKind.session_ended):
        session = SessionEventData.model_validate(envelope.data)
        return PlatformEvent(
            **common,
            meeting_id=session.meeting_id,
            room_name=session.room_name,
            session_id=session.room_session_id,
        )
    if kind is EventKind.recording_finished:
        recording = RecordingFinishedData.model_validate(envelope.data)
        return PlatformEvent(
            **common, meeting_id=recording.meeting_id, room_name=recording.room_name
        )
    other = OtherEventData.model_validate(envelope.data)
    return PlatformEvent(**common, meeting_id=other.meeting_id, room_name=other.room_name)


def iso_ms(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and Z, as Whereby writes times:
    2022-10-10T12:38:56.036Z"""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
