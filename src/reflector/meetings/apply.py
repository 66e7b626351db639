"""Applying verified platform events to meetings: head counts, participants, sessions.

Events may arrive duplicated and in any order. Counts come from the newest participant event
(by the platform's createdAt), each participant's presence from the newest event about them,
so every delivery order ends in the same state (for equal times, the later arrival wins).
Every write is one conditional statement, so concurrent deliveries never interleave a read and
a write.

This is the webhook hot path: the statements are Core, built once per backend with bound
parameters (building expression trees per request cost more than running them).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam, case, or_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reflector.db.upsert import insert_for
from reflector.meetings.models import Meeting, MeetingSession, Participant
from reflector.platforms.base import EventKind, ParticipantChange, PlatformEvent
from reflector.webhooks.models import Outcome


async def apply_event(
    conn: AsyncConnection, event: PlatformEvent, meeting_id: str | None
) -> Outcome:
    """Apply one event (not seen before) to the meeting it names. The caller commits."""
    if event.kind is EventKind.other:
        return Outcome.ignored
    if event.kind is EventKind.recording_finished:
        # The recording intake picks these up; the object key links them to meetings.
        return Outcome.queued
    if meeting_id is None:
        return Outcome.unmatched
    if event.participant is not None:
        joined = event.kind is EventKind.participant_joined
        counted = await _apply_counts(conn, meeting_id, event.participant, event.created_at)
        moved = await _apply_participant(
            conn, meeting_id, event.participant, joined, event.created_at
        )
        return Outcome.applied if counted or moved else Outcome.stale
    if event.session_id is not None:
        started = event.kind is EventKind.session_started
        await conn.execute(
            _session_upsert(conn.dialect.name),
            {
                "meeting_id": meeting_id,
                "session_id": event.session_id,
                "started_at": event.created_at if started else None,
                "ended_at": None if started else event.created_at,
            },
        )
        return Outcome.applied
    return Outcome.ignored


def counts_update(meeting_id: Any) -> Any:
    """UPDATE of a meeting's counts, applied only when the event is newer than the last."""
    return (
        update(Meeting)
        .where(
            Meeting.id == meeting_id,
            # Equal times do happen (a recorder joins in the same millisecond as the person
            # who triggered it); redeliveries never reach here, so arrival order decides.
            or_(Meeting.counts_event_at.is_(None), Meeting.counts_event_at <= bindparam("at")),
        )
        .values(
            num_clients=bindparam("num_clients"),
            num_clients_by_role=bindparam("by_role"),
            counts_event_at=bindparam("at"),
        )
        .returning(Meeting.id)
    )


_COUNTS_UPDATE = counts_update(bindparam("m_id"))


async def _apply_counts(
    conn: AsyncConnection, meeting_id: str, change: ParticipantChange, at: datetime
) -> bool:
    result = await conn.execute(
        _COUNTS_UPDATE,
        {
            "m_id": meeting_id,
            "at": at,
            "num_clients": change.num_clients,
            "by_role": change.num_clients_by_role,
        },
    )
    return result.first() is not None


def _earliest(new: Any, old: Any) -> Any:
    return case((new.is_not(None) & (old.is_(None) | (new < old)), new), else_=old)


def _latest(new: Any, old: Any) -> Any:
    return case((new.is_not(None) & (old.is_(None) | (new > old)), new), else_=old)


def _given_or(new: Any, old: Any) -> Any:
    return case((new.is_not(None), new), else_=old)


@cache
def _participant_upsert(dialect: str) -> Any:
    return participant_merge(insert_for(dialect, Participant.__table__))


def participant_merge(stmt: Any) -> Any:
    """ON CONFLICT clause merging a participant event into the stored participant."""
    table = Participant.__table__
    new, old = stmt.excluded, table.c
    newer = new.state_at >= old.state_at
    return stmt.on_conflict_do_update(
        index_elements=["meeting_id", "participant_id"],
        set_={
            "present": case((newer, new.present), else_=old.present),
            "state_at": case((newer, new.state_at), else_=old.state_at),
            # First join and last leave, whatever order they arrive in.
            "joined_at": _earliest(new.joined_at, old.joined_at),
            "left_at": _latest(new.left_at, old.left_at),
            "display_name": _given_or(new.display_name, old.display_name),
            "role_name": _given_or(new.role_name, old.role_name),
            "external_id": _given_or(new.external_id, old.external_id),
        },
    ).returning(table.c.state_at)


async def _apply_participant(
    conn: AsyncConnection, meeting_id: str, change: ParticipantChange, joined: bool, at: datetime
) -> bool:
    """Upsert the participant; True when this event is the newest about them."""
    result = await conn.execute(
        _participant_upsert(conn.dialect.name),
        {
            "meeting_id": meeting_id,
            "participant_id": change.participant_id,
            "display_name": change.display_name,
            "role_name": change.role_name,
            "external_id": change.external_id,
            "joined_at": at if joined else None,
            "left_at": None if joined else at,
            "present": joined,
            "state_at": at,
        },
    )
    return bool(result.scalar_one() == at)


@cache
def _session_upsert(dialect: str) -> Any:
    table = MeetingSession.__table__
    stmt = insert_for(dialect, table)
    new, old = stmt.excluded, table.c
    return stmt.on_conflict_do_update(
        index_elements=["meeting_id", "session_id"],
        set_={
            "started_at": _earliest(new.started_at, old.started_at),
            "ended_at": _latest(new.ended_at, old.ended_at),
        },
    )
