from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from reflector.auth.dependencies import CurrentUser
from reflector.deps import SessionDep, SettingsDep
from reflector.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from reflector.room_webhooks.urls import require_https
from reflector.rooms import service
from reflector.rooms.schemas import RoomCreate, RoomOut, RoomUpdate

router = APIRouter(prefix="/v1/rooms", tags=["rooms"])

_REF = "A room id (`room_...`) or the room's name."


_SHOWN_ONCE = (
    " A `webhook_url` given to a room without a signing secret creates one: it is in this "
    "answer's `webhook_secret`, and in no other."
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a room",
    description=_SHOWN_ONCE.strip(),
)
async def create_room(
    body: RoomCreate, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> RoomOut:
    require_https(body.webhook_url, settings)
    room = await service.create_room(session, user, body)
    secret = service.issue_webhook_secret(room)
    await session.commit()
    return RoomOut.model_validate(room).with_secret(secret)


@router.get("", summary="List your rooms, oldest first")
async def list_rooms(
    user: CurrentUser, session: SessionDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[RoomOut]:
    rooms, next_cursor = await service.list_rooms(session, user, limit=limit, cursor=cursor)
    return Page[RoomOut](
        items=[RoomOut.model_validate(room) for room in rooms], next_cursor=next_cursor
    )


@router.get("/{ref}", summary="Get a room by id or name", description=_REF)
async def get_room(ref: str, user: CurrentUser, session: SessionDep) -> RoomOut:
    return RoomOut.model_validate(await service.get_room(session, user, ref))


@router.patch(
    "/{ref}",
    summary="Change some of a room's fields",
    description=_REF + " A new `platform` first ends the room's active meeting on its old "
    "platform (end reason `platform_migrated`); the next meeting is created on the new one."
    + _SHOWN_ONCE,
)
async def update_room(
    ref: str,
    body: RoomUpdate,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> RoomOut:
    require_https(body.webhook_url, settings)
    room = await service.update_room(session, user, ref, body, request.app.state.platforms)
    secret = service.issue_webhook_secret(room)
    await session.commit()
    return RoomOut.model_validate(room).with_secret(secret)


@router.delete(
    "/{ref}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a room",
    description=_REF,
)
async def delete_room(ref: str, user: CurrentUser, session: SessionDep) -> Response:
    await service.delete_room(session, user, ref)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
