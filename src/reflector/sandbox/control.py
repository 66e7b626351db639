"""The control API, under `/_sandbox`: no API key (a local development tool). Bodies are JSON;
errors are `{"error": "<message>"}` (400 bad input, 404 unknown meeting or participant, 409 not
possible now).

    GET    /_sandbox/requests                 -> 200 {"requests": [{method, path, query,
                                                  queryString, contentType, body, status,
                                                  receivedAt}]}
                                                  every /v1 request received, oldest first
    DELETE /_sandbox/requests                 -> 204; empties the request log
    POST   /_sandbox/reset                    -> 204; forgets meetings, sessions, recordings,
                                                  requests, deliveries and the rate limit
    PUT    /_sandbox/rate-limit  {"count": N, "retryAfter": 30}
                                              -> 200 {"count", "retryAfter"}; the next N /v1
                                                  requests (with a valid key) answer 429;
                                                  count 0 switches it off
    GET    /_sandbox/wait?timeout=10          -> 200 {"idle": true} once every queued webhook was
                                                  delivered or given up and every recording is
                                                  stored; 504 {"error", "idle": false} on timeout
    GET    /_sandbox/webhooks                 -> 200 {"deliveries": [{id, type, meetingId, url,
                                                  state: pending|delivered|failed, statusCode,
                                                  attempts, error, attemptLog, event}]}
    GET    /_sandbox/recordings               -> 200 {"recordings": [{recordingId, meetingId,
                                                  roomName, participantId, status:
                                                  recording|processing|completed|failed,
                                                  startedAt, endedAt, audioFile, bucket, key,
                                                  location, error}]}
    GET    /_sandbox/meetings                 -> 200 {"meetings": [<meeting state>]}
    GET    /_sandbox/meetings/{meetingId}     -> 200 <meeting state>: {meeting (as the API with
                                                  hostRoomUrl and viewerRoomUrl), isLocked,
                                                  roomMode, templateType, recordingSettings,
                                                  participants, numClients, numClientsByRoleName,
                                                  session, recording, recordings, audioFile, theme}
    POST   /_sandbox/meetings/{meetingId}/participants
           {"displayName": "Ann", "roleName": "visitor", "externalId": null,
            "metadata": null, "isDialIn": false}
                                              -> 201 <participant>: {participantId, displayName,
                                                  roleName, externalId, metadata, isDialIn,
                                                  joinedAt}; roleName defaults to visitor and may
                                                  not be recorder
    DELETE /_sandbox/meetings/{meetingId}/participants/{participantId}
                                              -> 204; the participant leaves (the recorder's id
                                                  stops the recording)
    POST   /_sandbox/meetings/{meetingId}/recording/start
                                              -> 201 <recording>; 409 when the meeting is not
                                                  recorded to the cloud, a recording runs, or
                                                  nobody is in the room
    POST   /_sandbox/meetings/{meetingId}/recording/stop
                                              -> 200 <recording> (status processing); 409 when
                                                  none runs
    PUT    /_sandbox/meetings/{meetingId}/audio  {"path": "/abs/file.m4a"}
                                              -> 204; the meeting's recordings from the next one
                                                  on are made from this file
    GET    /_sandbox/rooms/{roomName}/logo    -> 200 the logo set through the theme API; 404
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from reflector.sandbox.engine import Sandbox
from reflector.sandbox.errors import not_found
from reflector.sandbox.state import Meeting, RateLimit
from reflector.sandbox.views import (
    delivery_json,
    meeting_state_json,
    participant_json,
    recording_json,
    request_json,
)

PREFIX = "/_sandbox"


class JoinBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    displayName: str = Field(min_length=1, max_length=200)
    roleName: str = "visitor"
    externalId: str | None = Field(None, max_length=500)
    metadata: str | None = Field(None, max_length=5000)
    isDialIn: bool = False


class RateLimitBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    count: int = Field(ge=0, le=1_000_000)
    retryAfter: float = Field(
        30.0, ge=0, le=3600, validation_alias=AliasChoices("retryAfter", "retry_after")
    )


class AudioBody(BaseModel):
    path: Path


def control_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter(prefix=PREFIX)
    state = sandbox.state

    def live(meeting_id: str) -> Meeting:
        meeting = state.live_meeting(meeting_id)
        if meeting is None:
            raise not_found(f"Meeting {meeting_id} not found")
        return meeting

    def meeting_state(meeting: Meeting) -> dict[str, Any]:
        recordings = [r for r in state.recordings if r.meeting_id == meeting.meeting_id]
        return meeting_state_json(meeting, state.themes.get(meeting.room_name), recordings)

    @router.get("/requests")
    async def list_requests() -> dict[str, Any]:
        return {"requests": [request_json(r) for r in state.requests]}

    @router.delete("/requests", status_code=204)
    async def clear_requests() -> Response:
        state.requests.clear()
        return Response(status_code=204)

    @router.post("/reset", status_code=204)
    async def reset() -> Response:
        await sandbox.reset()
        return Response(status_code=204)

    @router.put("/rate-limit")
    async def set_rate_limit(body: RateLimitBody) -> dict[str, Any]:
        state.rate_limit = RateLimit(body.count, body.retryAfter) if body.count else None
        return {"count": body.count, "retryAfter": body.retryAfter}

    @router.get("/wait")
    async def wait(seconds: float = Query(10.0, gt=0, le=300, alias="timeout")) -> JSONResponse:
        if await sandbox.wait_idle(seconds):
            return JSONResponse({"idle": True})
        return JSONResponse(
            {"error": f"Still busy after {seconds} s", "idle": False}, status_code=504
        )

    @router.get("/webhooks")
    async def webhooks() -> dict[str, Any]:
        deliveries = sandbox.webhooks.deliveries if sandbox.webhooks is not None else []
        return {"deliveries": [delivery_json(d) for d in deliveries]}

    @router.get("/recordings")
    async def recordings() -> dict[str, Any]:
        return {"recordings": [recording_json(r) for r in state.recordings]}

    @router.get("/meetings")
    async def meetings() -> dict[str, Any]:
        ordered = sorted(state.meetings.values(), key=lambda m: m.seq)
        return {"meetings": [meeting_state(m) for m in ordered]}

    @router.get("/meetings/{meeting_id}")
    async def meeting(meeting_id: str) -> dict[str, Any]:
        return meeting_state(live(meeting_id))

    @router.post("/meetings/{meeting_id}/participants", status_code=201)
    async def join(meeting_id: str, body: JoinBody) -> dict[str, Any]:
        participant = sandbox.join(
            live(meeting_id),
            body.displayName,
            body.roleName,
            body.externalId,
            body.metadata,
            body.isDialIn,
        )
        return participant_json(participant)

    @router.delete("/meetings/{meeting_id}/participants/{participant_id}", status_code=204)
    async def leave(meeting_id: str, participant_id: str) -> Response:
        if sandbox.leave(live(meeting_id), participant_id) is None:
            raise not_found(f"Participant {participant_id} is not in the room")
        return Response(status_code=204)

    @router.post("/meetings/{meeting_id}/recording/start", status_code=201)
    async def start_recording(meeting_id: str) -> dict[str, Any]:
        return recording_json(sandbox.start_recording(live(meeting_id)))

    @router.post("/meetings/{meeting_id}/recording/stop")
    async def stop_recording(meeting_id: str) -> dict[str, Any]:
        return recording_json(sandbox.stop_recording(live(meeting_id)))

    @router.put("/meetings/{meeting_id}/audio", status_code=204)
    async def set_audio(meeting_id: str, body: AudioBody) -> Response:
        sandbox.set_audio_file(live(meeting_id), body.path)
        return Response(status_code=204)

    @router.get("/rooms/{room_name}/logo")
    async def logo(room_name: str) -> Response:
        theme = state.themes.get("/" + room_name.lstrip("/"))
        if theme is None or theme.logo is None:
            raise not_found("This room has no logo")
        media_type = theme.logo_content_type or ""
        if not media_type.startswith("image/"):
            media_type = "application/octet-stream"
        # Uploaded bytes are served back: never let them run as a page (e.g. SVG scripts).
        headers = {
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'",
        }
        return Response(theme.logo, media_type=media_type, headers=headers)

    return router
