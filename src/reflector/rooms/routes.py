from __future__ import annotations

from fastapi import APIRouter, Response, status

from reflector.auth.dependencies import CurrentUser
from reflector.deps import SessionDep
from reflector.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from reflector.rooms import service
from reflector.rooms.schemas import RoomCreate, RoomOut, RoomUpdate

router = APIRouter(prefix="/v1/rooms", tags=["rooms"])

_REF = "A room id (`room_...`) or the room's name."


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a room")
async def create_room(body: RoomCreate, user: CurrentUser, session: SessionDep) -> RoomOut:
    room = await service.create_room(session, user, body)
    await session.commit()
    return RoomOut.model_validate(room)


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


@router.patch("/{ref}", summary="Change some of a room's fields", description=_REF)
async def update_room(
    ref: str, body: RoomUpdate, user: CurrentUser, session: SessionDep
) -> RoomOut:
    room = await service.update_room(session, user, ref, body)
    await session.commit()
    return RoomOut.model_validate(room)


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
