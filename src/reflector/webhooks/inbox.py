"""The event inbox: each verified event stored once, applied in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Boolean, String, bindparam, case, func, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from reflector.db.base import UTCDateTime
from reflector.db.driver_statement import DriverStatement, on_driver_connection
from reflector.db.upsert import insert_for
from reflector.meetings.apply import apply_event, counts_update, participant_merge
from reflector.meetings.models import Meeting, Participant
from reflector.platforms.base import EventKind, PlatformEvent
from reflector.webhooks.models import Outcome, WebhookEvent, WebhookRejection

DUPLICATE = "duplicate"


_BY_ID = (
    select(Meeting.id)
    .where(
        Meeting.platform == bindparam("m_platform"), Meeting.platform_meeting_id == bindparam("mid")
    )
    .scalar_subquery()
)
_BY_ROOM = (
    select(Meeting.id).where(Meeting.platform_room_name == bindparam("room")).scalar_subquery()
)
# Whereby events name the meeting by id and by room name; either may be missing.
_MEETING = select(func.coalesce(_BY_ID, _BY_ROOM)).scalar_subquery()


@cache
def _store_event(dialect: str) -> Any:
    # Stored as applied because most events are: only the others need a second write.
    return _event_insert(dialect, _MEETING, Outcome.applied.value)


def _event_insert(dialect: str, meeting_id: Any, outcome: Any) -> Any:
    """INSERT of a new event that also resolves its meeting; no row back for a redelivery."""
    table = WebhookEvent.__table__
    return (
        insert_for(dialect, table)
        .values(
            id=bindparam("e_id"),
            platform=bindparam("e_platform"),
            type=bindparam("e_type"),
            created_at=bindparam("e_created_at"),
            received_at=bindparam("e_received_at"),
            meeting_id=meeting_id,
            outcome=outcome,
            deliveries=1,
            payload=bindparam("e_payload"),
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(table.c.meeting_id, table.c.outcome)
    )


def _foreseen_participant_outcome(meeting_id: Any) -> Any:
    """A participant event's outcome as the statement's snapshot shows it, stored with it.

    Counts and presence only move forward in time, so an event older than both in the
    snapshot is certainly stale. One that looks newer can still lose to a newer event committed
    while it waited for the meeting's row lock: the caller compares and corrects those with a
    second statement. Under the benchmark's load 59% of events are stale (concurrent deliveries
    reorder them) and 5-8% of all events need that correction, against 59% when every event was
    stored as applied. Reading under FOR UPDATE would make it exact, but held the meeting's lock
    longer and was slower overall.
    """
    at = bindparam("at", type_=UTCDateTime())
    counts_at = select(Meeting.counts_event_at).where(Meeting.id == meeting_id).scalar_subquery()
    state_at = (
        select(Participant.state_at)
        .where(
            Participant.meeting_id == meeting_id,
            Participant.participant_id == bindparam("participant_id", type_=String()),
        )
        .scalar_subquery()
    )
    return case(
        (meeting_id.is_(None), Outcome.unmatched.value),
        # Counts and presence only move forward in time. NULL (no counts yet, a new
        # participant) compares as unknown: not stale.
        ((counts_at > at) & (state_at > at), Outcome.stale.value),
        else_=Outcome.applied.value,
    )


_PARTICIPANT_COLUMNS = [
    "meeting_id",
    "participant_id",
    "display_name",
    "role_name",
    "external_id",
    "joined_at",
    "left_at",
    "present",
    "state_at",
]


@cache
def _participant_event_postgresql() -> Any:
    """A participant event as ONE statement (data-modifying CTEs, PostgreSQL only).

    Run in autocommit, it holds the meeting's row lock only inside the server. As separate
    statements in a transaction, the lock was held across Python round trips, and under load
    every event queued behind the busiest event loop.
    """
    # Looked up once for the insert and the foreseen outcome.
    found = select(_MEETING.label("id")).cte("found")
    meeting = select(found.c.id).scalar_subquery()
    stored = _event_insert("postgresql", meeting, _foreseen_participant_outcome(meeting)).cte(
        "stored"
    )
    meeting_id = select(stored.c.meeting_id).scalar_subquery()
    counted = counts_update(meeting_id).cte("counted")
    text_param = String()
    upsert = participant_merge(
        insert_for("postgresql", Participant.__table__).from_select(
            _PARTICIPANT_COLUMNS,
            select(
                stored.c.meeting_id,
                bindparam("participant_id", type_=text_param),
                bindparam("display_name", type_=text_param),
                bindparam("role_name", type_=text_param),
                bindparam("external_id", type_=text_param),
                bindparam("joined_at", type_=UTCDateTime()),
                bindparam("left_at", type_=UTCDateTime()),
                bindparam("present", type_=Boolean()),
                bindparam("state_at", type_=UTCDateTime()),
            ).where(stored.c.meeting_id.is_not(None)),
        )
    ).cte("merged")
    return select(
        select(func.count()).select_from(stored).scalar_subquery().label("stored"),
        meeting_id.label("meeting_id"),
        select(func.count()).select_from(counted).scalar_subquery().label("counted"),
        select(upsert.c.state_at).scalar_subquery().label("state_at"),
        select(stored.c.outcome).scalar_subquery().label("stored_as"),
    )


_COUNT_DELIVERY = (
    update(WebhookEvent)
    .where(WebhookEvent.id == bindparam("event_id"))
    .values(deliveries=WebhookEvent.deliveries + 1)
)
_SET_OUTCOME = (
    update(WebhookEvent)
    .where(WebhookEvent.id == bindparam("event_id"))
    .values(outcome=bindparam("outcome"))
)


@dataclass(frozen=True)
class _DriverStatements:
    participant_event: DriverStatement
    count_delivery: DriverStatement
    set_outcome: DriverStatement


_driver_statements: WeakKeyDictionary[Dialect, _DriverStatements] = WeakKeyDictionary()


def _for_driver(dialect: Dialect) -> _DriverStatements:
    statements = _driver_statements.get(dialect)
    if statements is None:
        statements = _DriverStatements(
            DriverStatement.compile(_participant_event_postgresql(), dialect),
            DriverStatement.compile(_COUNT_DELIVERY, dialect),
            DriverStatement.compile(_SET_OUTCOME, dialect),
        )
        _driver_statements[dialect] = statements
    return statements


def _event_params(
    platform: str, event: PlatformEvent, payload: str, now: datetime
) -> dict[str, Any]:
    return {
        "e_id": event.event_id,
        "e_platform": platform,
        "e_type": event.type,
        "e_created_at": event.created_at,
        "e_received_at": now,
        "e_payload": payload,
        "m_platform": platform,
        "mid": event.meeting_id,
        "room": event.room_name,
    }


async def receive_event(
    engine: AsyncEngine, platform: str, event: PlatformEvent, payload: str, now: datetime
) -> str:
    """Store and apply `event` (committed when this returns); a redelivery only counts the
    delivery and changes nothing else."""
    params = _event_params(platform, event, payload, now)
    if engine.dialect.name == "postgresql" and event.participant is not None:
        return await _participant_event_in_one_statement(engine, event, params)
    async with engine.begin() as conn:
        inserted = (await conn.execute(_store_event(conn.dialect.name), params)).first()
        if inserted is None:
            await conn.execute(_COUNT_DELIVERY, {"event_id": event.event_id})
            return DUPLICATE
        outcome = await apply_event(conn, event, inserted.meeting_id)
        if outcome is not Outcome.applied:
            # A second statement: the event is already stored and applied as far as it goes;
            # this only corrects its label in the audit log.
            await conn.execute(_SET_OUTCOME, {"event_id": event.event_id, "outcome": outcome.value})
        return outcome.value


async def _participant_event_in_one_statement(
    engine: AsyncEngine, event: PlatformEvent, params: dict[str, Any]
) -> str:
    change = event.participant
    assert change is not None
    joined = event.kind is EventKind.participant_joined
    at = event.created_at
    params |= {
        "participant_id": change.participant_id,
        "display_name": change.display_name,
        "role_name": change.role_name,
        "external_id": change.external_id,
        "joined_at": at if joined else None,
        "left_at": None if joined else at,
        "present": joined,
        "state_at": at,
        "at": at,
        "num_clients": change.num_clients,
        "by_role": change.num_clients_by_role,
    }
    statements = _for_driver(engine.dialect)
    event_id = {"event_id": event.event_id}

    async def store_and_apply(driver: Any) -> str:
        row = await statements.participant_event.fetchrow(driver, params)
        if not row["stored"]:
            await statements.count_delivery.execute(driver, event_id)
            return DUPLICATE
        if row["meeting_id"] is None:
            outcome = Outcome.unmatched
        elif row["counted"] or row["state_at"] == at:
            outcome = Outcome.applied
        else:
            outcome = Outcome.stale
        if outcome.value != row["stored_as"]:
            # A second statement: the event is already stored and applied as far as it goes;
            # this only corrects its label in the audit log.
            await statements.set_outcome.execute(driver, event_id | {"outcome": outcome.value})
        return outcome.value

    # On the driver, in autocommit: see DriverStatement for why.
    return await on_driver_connection(engine, store_and_apply)


async def record_rejection(
    session: AsyncSession, platform: str, reason: str, client: str | None, now: datetime
) -> None:
    session.add(WebhookRejection(platform=platform, reason=reason, client=client, received_at=now))
    await session.flush()


async def stats(session: AsyncSession, platform: str, now: datetime) -> dict[str, object]:
    since = now - timedelta(hours=24)
    last = await session.scalar(
        select(func.max(WebhookEvent.received_at)).where(WebhookEvent.platform == platform)
    )
    accepted = await session.scalar(
        select(func.coalesce(func.sum(WebhookEvent.deliveries), 0)).where(
            WebhookEvent.platform == platform, WebhookEvent.received_at >= since
        )
    )
    by_reason = dict(
        (
            await session.execute(
                select(WebhookRejection.reason, func.count())
                .where(WebhookRejection.platform == platform, WebhookRejection.received_at >= since)
                .group_by(WebhookRejection.reason)
            )
        ).all()
    )
    return {
        "last_verified_event_at": last,
        "accepted_24h": int(accepted or 0),
        "rejected_24h": int(sum(by_reason.values())),
        "rejected_24h_by_reason": {str(k): int(v) for k, v in by_reason.items()},
    }
