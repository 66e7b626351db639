"""Room operations, always scoped to the owner. Callers own the session and commit."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from reflector.auth.models import User
from reflector.errors import Conflict, NotFound
from reflector.pagination import keyset_page
from reflector.platforms.base import VideoPlatform
from reflector.room_webhooks.signing import new_secret
from reflector.rooms.models import Room
from reflector.rooms.platform_migration import migrate_room
from reflector.rooms.schemas import RoomCreate, RoomUpdate

ROOM_ID_PREFIX = "room_"


def _taken(name: str) -> Conflict:
    return Conflict(f"A room named '{name}' already exists; room names are unique, pick another.")


def issue_webhook_secret(room: Room) -> str | None:
    """Give a room that has a webhook URL but no signing secret yet a secret, and return it
    (the caller shows it once); None when there was nothing to issue."""
    if room.webhook_url is None or room.webhook_secret is not None:
        return None
    room.webhook_secret = new_secret()
    return room.webhook_secret


async def _name_taken(session: AsyncSession, name: str) -> bool:
    return await session.scalar(select(Room.id).where(Room.name == name)) is not None


async def create_room(session: AsyncSession, owner: User, data: RoomCreate) -> Room:
    if await _name_taken(session, data.name):
        raise _taken(data.name)
    room = Room(owner_id=owner.id, **data.model_dump())
    session.add(room)
    try:
        await session.flush()
    except IntegrityError:
        # Another request took the name between our check and the insert.
        await session.rollback()
        raise _taken(data.name) from None
    return room


async def get_room(session: AsyncSession, owner: User, ref: str) -> Room:
    """A room by id (`room_...`) or by name; another user's room is reported as missing."""
    column = Room.id if ref.startswith(ROOM_ID_PREFIX) else Room.name
    room = await session.scalar(select(Room).where(column == ref, Room.owner_id == owner.id))
    if room is None:
        raise NotFound(f"No room '{ref}' among your rooms; GET /v1/rooms lists them.")
    return room


async def list_rooms(
    session: AsyncSession, owner: User, *, limit: int, cursor: str | None
) -> tuple[list[Room], str | None]:
    """Oldest first."""
    query = select(Room).where(Room.owner_id == owner.id)
    return await keyset_page(session, query, Room, limit=limit, cursor=cursor)


async def update_room(
    session: AsyncSession,
    owner: User,
    ref: str,
    data: RoomUpdate,
    platforms: Mapping[str, VideoPlatform],
) -> Room:
    """`platforms`: the registered ones, to end the room's active meetings on its old platform
    when `platform` changes."""
    room = await get_room(session, owner, ref)
    changes = data.model_dump(exclude_unset=True)
    new_platform = changes.pop("platform", None)
    new_name = changes.get("name")
    if new_name and new_name != room.name and await _name_taken(session, new_name):
        raise _taken(new_name)
    for field, value in changes.items():
        setattr(room, field, value)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise _taken(str(new_name)) from None
    # Last, once nothing else can fail: it ends meetings on the old platform.
    if new_platform is not None and new_platform != room.platform:
        await migrate_room(session, room, new_platform, platforms)
    return room


async def delete_room(session: AsyncSession, owner: User, ref: str) -> None:
    room = await get_room(session, owner, ref)
    await session.delete(room)
    await session.flush()
