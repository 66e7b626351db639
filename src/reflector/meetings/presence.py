"""Who was in a meeting when, relative to a recording's start: read back from the platform's
join/leave webhooks in the event inbox (the audit log keeps every one, in any delivery order).

The pipeline uses it to tell the diarizer how many people there were and to name voices.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from reflector.logs import get_logger
from reflector.pipeline.types import PresenceInterval
from reflector.platforms.base import EventKind, InvalidWebhookPayload, PlatformEvent
from reflector.platforms.whereby.events import BOT_ROLES
from reflector.platforms.whereby.events import parse_event as parse_whereby_event
from reflector.webhooks.models import WebhookEvent

_log = get_logger("reflector.meetings.presence")

_PARSERS: dict[str, Callable[[bytes], PlatformEvent]] = {"whereby": parse_whereby_event}
_PRESENCE = (EventKind.participant_joined, EventKind.participant_left)


@dataclass(frozen=True)
class _Change:
    at: datetime
    joined: bool
    participant_id: str
    name: str


async def meeting_presence(
    conn: AsyncConnection, meeting_id: str, recording_start: datetime
) -> list[PresenceInterval]:
    """The people's (not bots') presence intervals in seconds from `recording_start`, sorted
    by start; intervals that ended before the recording started are left out."""
    rows = (
        await conn.execute(
            select(WebhookEvent.platform, WebhookEvent.payload).where(
                WebhookEvent.meeting_id == meeting_id
            )
        )
    ).all()
    changes: list[_Change] = []
    for platform, payload in rows:
        parse = _PARSERS.get(platform)
        if parse is None:
            continue
        try:
            event = parse(payload.encode())
        except InvalidWebhookPayload:
            _log.warning("stored webhook event unreadable", meeting_id=meeting_id)
            continue
        person = event.participant
        if event.kind not in _PRESENCE or person is None or person.role_name in BOT_ROLES:
            continue
        name = (person.display_name or "").strip()
        changes.append(
            _Change(
                event.created_at,
                event.kind is EventKind.participant_joined,
                person.participant_id,
                name,
            )
        )
    return _intervals(changes, recording_start)


def _intervals(changes: list[_Change], origin: datetime) -> list[PresenceInterval]:
    by_participant: dict[str, list[_Change]] = defaultdict(list)
    for change in changes:
        by_participant[change.participant_id].append(change)
    spans: list[tuple[str, str, datetime, datetime | None]] = []
    for participant_id, own in by_participant.items():
        # A leave and a join at the same instant: the leave first, so a quick rejoin shows.
        own.sort(key=lambda c: (c.at, c.joined))
        opened: datetime | None = None
        name = next((c.name for c in reversed(own) if c.name), "")
        for change in own:
            if change.joined and opened is None:
                opened = change.at
            elif not change.joined:
                # A leave without a join seen: present from an unknown time, so not used.
                if opened is not None:
                    spans.append((participant_id, name, opened, change.at))
                opened = None
        if opened is not None:
            spans.append((participant_id, name, opened, None))
    merged = _merge_reconnects(spans)
    intervals = [
        PresenceInterval(
            participant_id=participant_id,
            name=name,  # empty: present, but never a name for a voice
            start=(start - origin).total_seconds(),
            end=None if end is None else (end - origin).total_seconds(),
        )
        for participant_id, name, start, end in merged
        if end is None or end > origin
    ]
    intervals.sort(key=lambda i: (i.start, i.participant_id))
    return intervals


def _merge_reconnects(
    spans: list[tuple[str, str, datetime, datetime | None]],
) -> list[tuple[str, str, datetime, datetime | None]]:
    """A reconnect gets a new participant id under the same display name; when the two
    never overlap they are one person, so the later id takes the first one's."""
    by_name: dict[str, list[tuple[str, str, datetime, datetime | None]]] = defaultdict(list)
    for span in spans:
        by_name[span[1]].append(span)
    result: list[tuple[str, str, datetime, datetime | None]] = []
    for name, group in by_name.items():
        ids = {span[0] for span in group}
        if not name or len(ids) == 1:
            result.extend(group)
            continue
        group.sort(key=lambda s: s[2])
        overlapping = any(
            earlier[3] is None or earlier[3] > later[2]
            for earlier, later in itertools.pairwise(group)
            if earlier[0] != later[0]
        )
        if overlapping:
            result.extend(group)  # two people with one name: kept apart
        else:
            first = group[0][0]
            result.extend((first, name, start, end) for _, _, start, end in group)
    return result


def people_count(presence: list[PresenceInterval]) -> int | None:
    """How many people were in the recording, or None when the events do not tell."""
    people = {interval.participant_id for interval in presence}
    return len(people) or None
