"""JSON shapes: meetings as the Whereby API returns them, and the control API's views."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reflector.sandbox.state import (
    LoggedRequest,
    Meeting,
    Participant,
    Recording,
    RoomSession,
    Theme,
)
from reflector.sandbox.times import iso_ms
from reflector.sandbox.webhooks import Delivery

ALL_FIELDS = ("hostRoomUrl", "viewerRoomUrl")


def _iso(moment: Any) -> str | None:
    return iso_ms(moment) if moment is not None else None


def meeting_json(meeting: Meeting, fields: Iterable[str] = ()) -> dict[str, Any]:
    wanted = set(fields)
    body: dict[str, Any] = {
        "meetingId": meeting.meeting_id,
        "roomName": meeting.room_name,
        "roomUrl": meeting.room_url,
        "startDate": iso_ms(meeting.start_date),
        "endDate": iso_ms(meeting.end_date),
    }
    if "hostRoomUrl" in wanted:
        body["hostRoomUrl"] = meeting.host_room_url
    if "viewerRoomUrl" in wanted:
        body["viewerRoomUrl"] = meeting.viewer_room_url
    return body


def session_json(session: RoomSession) -> dict[str, Any]:
    return {
        "roomSessionId": session.room_session_id,
        "startedAt": iso_ms(session.started_at),
        "endedAt": _iso(session.ended_at),
    }


def participant_json(participant: Participant) -> dict[str, Any]:
    return {
        "participantId": participant.participant_id,
        "displayName": participant.display_name,
        "roleName": participant.role_name,
        "externalId": participant.external_id,
        "metadata": participant.metadata,
        "isDialIn": participant.is_dial_in,
        "joinedAt": iso_ms(participant.joined_at),
    }


def recording_json(recording: Recording) -> dict[str, Any]:
    return {
        "recordingId": recording.recording_id,
        "meetingId": recording.meeting_id,
        "roomName": recording.room_name,
        "participantId": recording.recorder_id,
        "status": recording.status,
        "startedAt": iso_ms(recording.started_at),
        "endedAt": _iso(recording.ended_at),
        "audioFile": str(recording.audio_file),
        "bucket": recording.bucket,
        "key": recording.key,
        "location": recording.location,
        "error": recording.error,
    }


def theme_json(theme: Theme | None) -> dict[str, Any]:
    return {
        "logo": theme is not None and theme.logo is not None,
        "logoContentType": theme.logo_content_type if theme is not None else None,
        "tokens": theme.tokens if theme is not None else None,
    }


def meeting_state_json(
    meeting: Meeting, theme: Theme | None, recordings: Iterable[Recording]
) -> dict[str, Any]:
    spec = meeting.request.recording
    destination = spec.destination
    return {
        "meeting": meeting_json(meeting, ALL_FIELDS),
        "isLocked": meeting.request.is_locked,
        "roomMode": meeting.request.room_mode,
        "templateType": meeting.request.template_type,
        "recordingSettings": {
            "type": spec.type,
            "startTrigger": spec.start_trigger,
            # The destination's keys are left out: this view is served without a key.
            "destination": None
            if destination is None
            else {
                "provider": destination.provider,
                "bucket": destination.bucket,
                "fileFormat": destination.file_format,
            },
        },
        "participants": [participant_json(p) for p in meeting.participants.values()],
        "numClients": len(meeting.participants),
        "numClientsByRoleName": meeting.role_counts(),
        "session": session_json(meeting.session) if meeting.session is not None else None,
        "recording": recording_json(meeting.recording) if meeting.recording else None,
        "recordings": [recording_json(r) for r in recordings],
        "audioFile": str(meeting.audio_file) if meeting.audio_file is not None else None,
        "theme": theme_json(theme),
    }


def request_json(request: LoggedRequest) -> dict[str, Any]:
    return {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "queryString": request.query_string,
        "contentType": request.content_type,
        "body": request.body,
        "status": request.status,
        "receivedAt": iso_ms(request.received_at),
    }


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.event_id,
        "type": delivery.event_type,
        "meetingId": delivery.meeting_id,
        "url": delivery.url,
        "state": delivery.state,
        "statusCode": delivery.status_code,
        "attempts": delivery.attempts,
        "error": delivery.error,
        "attemptLog": delivery.attempt_log,
        "event": delivery.event,
    }
