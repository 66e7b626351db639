"""The Whereby REST API under `/v1`, as the project's Whereby guide describes it.

Authentication, the request log and the rate-limit switch sit in front of these routes
(`guard.py`)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from reflector.sandbox.engine import Sandbox
from reflector.sandbox.errors import bad_request, not_found
from reflector.sandbox.meeting_request import EXTRA_FIELDS, parse_meeting_request
from reflector.sandbox.multipart import read_file_field
from reflector.sandbox.state import Meeting
from reflector.sandbox.times import utcnow
from reflector.sandbox.views import meeting_json, session_json

Limit = Annotated[int, Query(ge=1, le=100)]


def _fields(raw: list[str] | None) -> set[str]:
    """`?fields=hostRoomUrl,viewerRoomUrl` or repeated `fields`; unknown names are ignored."""
    names = {name.strip() for value in raw or () for name in value.split(",")}
    return names & EXTRA_FIELDS


def _encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"after:{position}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        label, _, number = text.partition(":")
        if label != "after":
            raise ValueError(text)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad_request("Invalid cursor") from None


def api_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter(prefix="/v1")
    state = sandbox.state

    def live(meeting_id: str) -> Meeting:
        meeting = state.live_meeting(meeting_id)
        if meeting is None:
            raise not_found(f"Meeting {meeting_id} not found")
        return meeting

    def room(room_name: str) -> Meeting:
        meeting = state.live_room(room_name)
        if meeting is None:
            raise not_found(f"Room /{room_name.lstrip('/')} not found")
        return meeting

    @router.post("/meetings", status_code=201)
    async def create_meeting(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise bad_request("The request body must be a JSON object") from None
        meeting_request = parse_meeting_request(body, utcnow())
        meeting = sandbox.create_meeting(meeting_request)
        return meeting_json(meeting, meeting_request.fields)

    @router.get("/meetings")
    async def list_meetings(
        cursor: str | None = None,
        limit: Limit = 50,
        fields: Annotated[list[str] | None, Query()] = None,
    ) -> dict[str, Any]:
        after = _decode_cursor(cursor)
        page = state.listed_meetings(after, limit + 1)
        more = len(page) > limit
        page = page[:limit]
        wanted = _fields(fields)
        return {
            "results": [meeting_json(meeting, wanted) for meeting in page],
            "cursor": _encode_cursor(page[-1].seq) if more else None,
        }

    @router.get("/meetings/{meeting_id}")
    async def get_meeting(
        meeting_id: str, fields: Annotated[list[str] | None, Query()] = None
    ) -> dict[str, Any]:
        return meeting_json(live(meeting_id), _fields(fields))

    @router.delete("/meetings/{meeting_id}", status_code=204)
    async def delete_meeting(meeting_id: str) -> Response:
        if not sandbox.delete_meeting(meeting_id):
            raise not_found(f"Meeting {meeting_id} not found")
        return Response(status_code=204)

    @router.get("/insights/room-sessions")
    async def room_sessions(
        roomName: str | None = None,  # Whereby's parameter name
        cursor: str | None = None,
        limit: Limit = 50,
    ) -> dict[str, Any]:
        if not roomName:
            raise bad_request('"roomName" is required')
        sessions = state.sessions.get("/" + roomName.lstrip("/"), [])
        start = _decode_cursor(cursor)
        page = sessions[start : start + limit]
        more = start + limit < len(sessions)
        return {
            "results": [session_json(session) for session in page],
            "cursor": _encode_cursor(start + limit) if more else None,
        }

    @router.put("/rooms/{room_name}/theme/logo", status_code=204)
    async def put_logo(room_name: str, request: Request) -> Response:
        meeting = room(room_name)
        upload = read_file_field(
            request.headers.get("content-type", ""), await request.body(), "image"
        )
        if upload is None or not upload.data:
            raise bad_request('Send the logo as a multipart/form-data file field "image"')
        theme = sandbox.theme(meeting)
        theme.logo = upload.data
        theme.logo_content_type = upload.content_type
        return Response(status_code=204)

    @router.put("/rooms/{room_name}/theme/tokens", status_code=204)
    async def put_tokens(room_name: str, request: Request) -> Response:
        meeting = room(room_name)
        try:
            body = await request.json()
        except ValueError:
            raise bad_request("The request body must be a JSON object") from None
        tokens = body.get("tokens") if isinstance(body, dict) else None
        if not isinstance(tokens, dict):
            raise bad_request('"tokens" must be an object')
        colors = tokens.get("colors", {})
        if not isinstance(colors, dict) or not all(isinstance(v, str) for v in colors.values()):
            raise bad_request('"tokens.colors" must be an object of colour strings')
        sandbox.theme(meeting).tokens = tokens
        return Response(status_code=204)

    return router
