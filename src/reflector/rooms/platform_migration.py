"""Moving rooms to another video platform.

A meeting lives on the platform that created it, so a room that changes platform first ends
its active meetings there (VideoPlatform.end_meeting) and here (reason "platform_migrated");
its next meeting is created on the new platform. The old platform may fail, or no longer be
registered at all: the meeting is then ended here only, and the failure logged, because a
room must not stay stuck on a platform that is gone.

`migrate_room` does this for one room (PATCH /v1/rooms/{ref} with a new `platform`);
`migrate_platform` for every room on a platform (`reflector rooms migrate-platform`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reflector.db.base import utcnow
from reflector.logs import get_logger
from reflector.meetings.models import Meeting
from reflector.meetings.service import mark_ended
from reflector.platforms.base import VideoPlatform
from reflector.room_webhooks.outbox import enqueue_meeting_ended
from reflector.rooms.models import Room

END_REASON = "platform_migrated"

_log = get_logger("reflector.rooms.platform_migration")


@dataclass(frozen=True)
class EndedMeeting:
    meeting_id: str
    # Whether the old platform was asked to end it too (False: it is not registered here, or
    # it answered with an error; the meeting is ended here all the same).
    on_platform: bool


@dataclass(frozen=True)
class RoomMigration:
    """What moving one room did, or with `dry_run` would do."""

    room_id: str
    room_name: str
    old_platform: str
    new_platform: str
    meetings: tuple[EndedMeeting, ...]
    dry_run: bool

    def describe(self) -> str:
        """One line for people: the room, the move, and the meetings it ends."""
        verb = "would move" if self.dry_run else "moved"
        line = f"{verb} room {self.room_name} ({self.room_id}) from {self.old_platform} to "
        line += self.new_platform
        if not self.meetings:
            return line + "; no active meeting"
        ending = "would end" if self.dry_run else "ended"
        parts = [
            m.meeting_id
            + ("" if m.on_platform else f" (only here: not ended on {self.old_platform})")
            for m in self.meetings
        ]
        return f"{line}; {ending} {len(self.meetings)} active meeting(s): {', '.join(parts)}"


async def migrate_room(
    session: AsyncSession,
    room: Room,
    new_platform: str,
    platforms: Mapping[str, VideoPlatform],
    *,
    dry_run: bool = False,
) -> RoomMigration:
    """Move `room` to `new_platform`, ending its active meetings on their platform and here.

    `platforms` are the registered ones; a meeting whose platform is missing from them, or
    whose platform fails to end it, is ended here only (and the failure logged). With
    `dry_run` nothing changes, here or on any platform. The caller commits.
    """
    old_platform = room.platform
    active = list(
        await session.scalars(
            select(Meeting)
            .where(Meeting.room_id == room.id, Meeting.is_active.is_(True))
            .order_by(Meeting.created_at, Meeting.id)
        )
    )
    ended: list[EndedMeeting] = []
    for meeting in active:
        platform = platforms.get(meeting.platform)
        if dry_run:
            ended.append(EndedMeeting(meeting.id, on_platform=platform is not None))
            continue
        ended.append(EndedMeeting(meeting.id, await _end_on_platform(platform, meeting)))
        now = utcnow()
        mark_ended(meeting, END_REASON, now)
        await enqueue_meeting_ended(session, meeting, now)
        _log.info("meeting ended", meeting_id=meeting.id, reason=END_REASON)
    if not dry_run and old_platform != new_platform:
        room.platform = new_platform
        await session.flush()
        _log.info(
            "room moved to another platform",
            room_id=room.id,
            old_platform=old_platform,
            new_platform=new_platform,
            meetings_ended=len(ended),
        )
    return RoomMigration(
        room_id=room.id,
        room_name=room.name,
        old_platform=old_platform,
        new_platform=new_platform,
        meetings=tuple(ended),
        dry_run=dry_run,
    )


async def _end_on_platform(platform: VideoPlatform | None, meeting: Meeting) -> bool:
    if platform is None:
        _log.warning(
            "meeting's platform is not registered; ending it here only",
            meeting_id=meeting.id,
            platform=meeting.platform,
        )
        return False
    try:
        await platform.end_meeting(meeting.platform_meeting_id)
    except Exception as exc:
        # The room moves on regardless; the meeting expires on the old platform by itself.
        _log.warning(
            "could not end the meeting on its old platform; ending it here only",
            meeting_id=meeting.id,
            platform=meeting.platform,
            error=str(exc) or exc.__class__.__name__,
        )
        return False
    return True


async def migrate_platform(
    session: AsyncSession,
    old_platform: str,
    new_platform: str,
    platforms: Mapping[str, VideoPlatform],
    *,
    dry_run: bool = False,
    report: Callable[[RoomMigration], None] = lambda _migration: None,
) -> list[RoomMigration]:
    """Move every room on `old_platform` (registered or not) to `new_platform`, by name.

    Commits after each room, so that a failure halfway keeps the rooms already moved (and
    their meetings, already ended on the platform, ended here too); `report` hears of each
    room as it is done. With `dry_run` nothing changes and nothing is committed.
    """
    rooms = list(
        await session.scalars(
            select(Room).where(Room.platform == old_platform).order_by(Room.name, Room.id)
        )
    )
    done: list[RoomMigration] = []
    for room in rooms:
        migration = await migrate_room(session, room, new_platform, platforms, dry_run=dry_run)
        if not dry_run:
            await session.commit()
        done.append(migration)
        report(migration)
    return done


def summary(migrations: list[RoomMigration], *, dry_run: bool) -> str:
    """The closing line: how many rooms and meetings, and whether anything changed."""
    meetings = sum(len(m.meetings) for m in migrations)
    if dry_run:
        return (
            f"dry run: would move {len(migrations)} room(s) and end {meetings} active "
            "meeting(s); nothing was changed"
        )
    return f"moved {len(migrations)} room(s) and ended {meetings} active meeting(s)"
