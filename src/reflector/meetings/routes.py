from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from reflector.auth.dependencies import CurrentUser
from reflector.db.base import utcnow
from reflector.deps import SessionDep, SettingsDep
from reflector.errors import ServiceUnavailable
from reflector.meetings import service
from reflector.meetings.schemas import MeetingOut
from reflector.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from reflector.platforms.base import VideoPlatform
from reflector.room_webhooks.outbox import enqueue_meeting_ended
from reflector.rooms import service as rooms

router = APIRouter(prefix="/v1", tags=["meetings"])


def platform_for(request: Request, name: str) -> VideoPlatform:
    platforms: dict[str, VideoPlatform] = request.app.state.platforms
    platform = platforms.get(name)
    if platform is None:
        raise ServiceUnavailable(
            f"The room's platform '{name}' is not available in this installation; "
            f"available: {', '.join(sorted(platforms))}."
        )
    return platform


@router.post(
    "/rooms/{ref}/meeting",
    summary="The room's active meeting, created on its platform when there is none",
    responses={200: {"description": "The active meeting already existed"}},
    status_code=status.HTTP_201_CREATED,
)
async def room_meeting(
    ref: str,
    request: Request,
    response: Response,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> MeetingOut:
    room = await rooms.get_room(session, user, ref)
    # Give the connection back to the pool for the (slow) platform call.
    await session.commit()
    meeting, created = await service.ensure_meeting(
        request.app.state.session_factory,
        platform_for(request, room.platform),
        room.id,
        meeting_hours=settings.WHEREBY_MEETING_DURATION_HOURS,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return await service.meeting_details(session, meeting, room.name, is_owner=True)


@router.get("/rooms/{ref}/meetings", summary="The room's meetings, newest first")
async def room_meetings(
    ref: str,
    user: CurrentUser,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[MeetingOut]:
    room = await rooms.get_room(session, user, ref)
    meetings, next_cursor = await service.list_room_meetings(
        session, room, limit=limit, cursor=cursor
    )
    items = [
        await service.meeting_details(session, meeting, room.name, is_owner=True)
        for meeting in meetings
    ]
    return Page[MeetingOut](items=items, next_cursor=next_cursor)


@router.get("/meetings/{meeting_id}", summary="One meeting with its participants and sessions")
async def get_meeting(meeting_id: str, user: CurrentUser, session: SessionDep) -> MeetingOut:
    meeting, room = await service.get_owned_meeting(session, user, meeting_id)
    return await service.meeting_details(session, meeting, room.name, is_owner=True)


@router.post("/meetings/{meeting_id}/end", summary="End the meeting now on its platform")
async def end_meeting(
    meeting_id: str, request: Request, user: CurrentUser, session: SessionDep
) -> MeetingOut:
    meeting, room = await service.get_owned_meeting(session, user, meeting_id)
    if meeting.is_active:
        await platform_for(request, meeting.platform).end_meeting(meeting.platform_meeting_id)
        now = utcnow()
        service.mark_ended(meeting, "ended_by_owner", now)
        await enqueue_meeting_ended(session, meeting, now)
        await session.commit()
    return await service.meeting_details(session, meeting, room.name, is_owner=True)
