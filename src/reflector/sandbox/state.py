"""Everything the sandbox remembers, in memory: meetings, participants, sessions, recordings,
themes, the request log and the rate-limit switch.

The state belongs to one event loop. Each change is made without an `await` between reading and
writing, so one change is never interleaved with another; slow work (encoding, uploads,
webhook calls) runs elsewhere on copies of what it needs."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from reflector.sandbox.meeting_request import Destination, MeetingRequest

RECORDER = "recorder"
REQUEST_HISTORY = 10_000
PARTICIPANT_ROLES = frozenset(
    {
        "owner",
        "member",
        "host",
        "visitor",
        "granted_visitor",
        "viewer",
        "granted_viewer",
        "streamer",
        "captioner",
        "assistant",
    }
)


@dataclass
class Participant:
    participant_id: str
    display_name: str
    role_name: str
    external_id: str | None
    metadata: str | None
    is_dial_in: bool
    joined_at: datetime

    @property
    def is_recorder(self) -> bool:
        return self.role_name == RECORDER


@dataclass
class RoomSession:
    room_session_id: str
    room_name: str
    started_at: datetime
    ended_at: datetime | None = None


@dataclass
class Recording:
    recording_id: str
    meeting_id: str
    room_name: str
    recorder_id: str
    started_at: datetime
    audio_file: Path
    destination: Destination | None
    ended_at: datetime | None = None
    # recording -> processing (encoding, storing) -> completed | failed
    status: str = "recording"
    bucket: str | None = None
    key: str | None = None
    location: str | None = None
    error: str | None = None


@dataclass
class Theme:
    logo_content_type: str | None = None
    logo: bytes | None = None
    tokens: dict[str, Any] | None = None


@dataclass
class Meeting:
    meeting_id: str
    seq: int
    room_name: str
    room_url: str
    start_date: datetime
    request: MeetingRequest
    host_room_key: str
    viewer_room_key: str
    participants: dict[str, Participant] = field(default_factory=dict)
    session: RoomSession | None = None
    recording: Recording | None = None
    audio_file: Path | None = None
    deleted: bool = False
    session_end_timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def end_date(self) -> datetime:
        return self.request.end_date

    @property
    def host_room_url(self) -> str:
        return f"{self.room_url}?roomKey={self.host_room_key}"

    @property
    def viewer_room_url(self) -> str:
        return f"{self.room_url}?roomKey={self.viewer_room_key}"

    @property
    def people(self) -> list[Participant]:
        """Participants other than the recorder, in the order they joined."""
        return [p for p in self.participants.values() if not p.is_recorder]

    def role_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for participant in self.participants.values():
            counts[participant.role_name] = counts.get(participant.role_name, 0) + 1
        return counts


@dataclass
class LoggedRequest:
    method: str
    path: str
    query_string: str
    query: dict[str, str]
    content_type: str | None
    body: Any
    received_at: datetime
    status: int | None = None


@dataclass
class RateLimit:
    remaining: int
    retry_after: float
    limit: int = 100


class SandboxState:
    def __init__(self) -> None:
        self._clear()

    def reset(self) -> None:
        """Forget everything (cancelling pending session ends)."""
        for meeting in self.meetings.values():
            if meeting.session_end_timer is not None:
                meeting.session_end_timer.cancel()
        self._clear()

    def _clear(self) -> None:
        self.meetings: dict[str, Meeting] = {}
        self.rooms: dict[str, Meeting] = {}
        self.deleted_meeting_ids: set[str] = set()
        self.sessions: dict[str, list[RoomSession]] = {}
        self.recordings: list[Recording] = []
        self.themes: dict[str, Theme] = {}
        # Bounded: a sandbox left running for days keeps only the recent history.
        self.requests: deque[LoggedRequest] = deque(maxlen=REQUEST_HISTORY)
        self.rate_limit: RateLimit | None = None
        self._seq = 0

    # Meetings

    def new_meeting_id(self) -> str:
        while True:
            # Whereby's ids are 8-digit numeric strings.
            candidate = str(10_000_000 + secrets.randbelow(90_000_000))
            if candidate not in self.meetings and candidate not in self.deleted_meeting_ids:
                return candidate

    def add_meeting(self, meeting: Meeting) -> None:
        self.meetings[meeting.meeting_id] = meeting
        self.rooms[meeting.room_name] = meeting

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def live_meeting(self, meeting_id: str) -> Meeting | None:
        meeting = self.meetings.get(meeting_id)
        return None if meeting is None or meeting.deleted else meeting

    def live_room(self, room_name: str) -> Meeting | None:
        """The meeting of a room name, with or without its leading slash."""
        meeting = self.rooms.get("/" + room_name.lstrip("/"))
        return None if meeting is None or meeting.deleted else meeting

    def forget_meeting(self, meeting: Meeting) -> None:
        """Drop a deleted meeting from lookups; its sessions and recordings stay listed."""
        meeting.deleted = True
        self.meetings.pop(meeting.meeting_id, None)
        self.rooms.pop(meeting.room_name, None)
        self.themes.pop(meeting.room_name, None)
        self.deleted_meeting_ids.add(meeting.meeting_id)

    def listed_meetings(self, after_seq: int, limit: int) -> list[Meeting]:
        ordered = sorted(self.meetings.values(), key=lambda m: m.seq)
        return [m for m in ordered if m.seq > after_seq][:limit]

    # Sessions

    def open_session(self, meeting: Meeting, now: datetime) -> RoomSession:
        session = RoomSession(str(uuid.uuid4()), meeting.room_name, now)
        meeting.session = session
        self.sessions.setdefault(meeting.room_name, []).append(session)
        return session

    # Rate limiting

    def take_rate_limit(self) -> RateLimit | None:
        """The active limit, using up one of its requests; None when requests may pass."""
        limit = self.rate_limit
        if limit is None or limit.remaining <= 0:
            self.rate_limit = None
            return None
        limit.remaining -= 1
        return limit
