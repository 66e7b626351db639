"""Typed views of Whereby's REST responses.

Whereby speaks camelCase and adds response fields at any time, so these models read camelCase
aliases, expose snake_case attributes and ignore whatever they do not know.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


def _as_utc(value: datetime) -> datetime:
    # Whereby sends UTC with a `Z`; a timestamp without an offset is read as UTC rather than
    # rejected, so one sloppy field never breaks a meeting.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class WherebyModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        extra="ignore",
        frozen=True,
        # meetingId is documented as a numeric string; accept a bare number too.
        coerce_numbers_to_str=True,
    )


class WherebyMeeting(WherebyModel):
    """A meeting as `POST /meetings` and `GET /meetings/{id}` return it."""

    meeting_id: str
    # With its leading slash, e.g. "/standup-546f6c91-...".
    room_name: str
    room_url: str
    start_date: UtcDatetime
    end_date: UtcDatetime
    # Only present when asked for with `fields`.
    host_room_url: str | None = None
    viewer_room_url: str | None = None


class WherebyRoomSession(WherebyModel):
    """One entry of `GET /insights/room-sessions`; `ended_at` is None while it still runs."""

    room_session_id: str
    started_at: UtcDatetime
    ended_at: UtcDatetime | None = None
