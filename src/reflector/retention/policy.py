"""The retention policy: how many days each kind of data is kept, and why.

Three kinds, each with a setting and a per-room override (rooms.retention_*_days, which wins
when not null; transcripts and recordings without a room use the setting):

- "recording": the raw file in the recording bucket, counted from recordings.processed_at,
  only for recordings that were processed successfully;
- "audio": a transcript's derived audio (WAV, playback copy, the audio step's peaks), counted
  from transcripts.ended_at, only for transcripts that ended;
- "transcript": the transcript itself with all its derived files, counted the same way.

None means "kept": nothing is deleted. 0 means "at the next pass".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from reflector.settings import Settings


class Kind(StrEnum):
    recording = "recording"
    audio = "audio"
    transcript = "transcript"


# The setting and the room column of each kind.
SETTING = {
    Kind.recording: "RETENTION_RECORDING_DAYS",
    Kind.audio: "RETENTION_AUDIO_DAYS",
    Kind.transcript: "RETENTION_TRANSCRIPT_DAYS",
}
ROOM_FIELD = {
    Kind.recording: "retention_recording_days",
    Kind.audio: "retention_audio_days",
    Kind.transcript: "retention_transcript_days",
}


@dataclass(frozen=True)
class RoomRetention:
    """A room's name and overrides, as the policy needs them."""

    id: str
    name: str
    recording_days: int | None
    audio_days: int | None
    transcript_days: int | None

    def days(self, kind: Kind) -> int | None:
        if kind is Kind.recording:
            return self.recording_days
        if kind is Kind.audio:
            return self.audio_days
        return self.transcript_days


@dataclass(frozen=True)
class Rule:
    """How long one kind of data is kept for one room (or without a room), and where that
    number came from."""

    kind: Kind
    days: int
    room: str | None  # the room whose override this is; None: the setting

    @property
    def source(self) -> str:
        """For reasons: "RETENTION_RECORDING_DAYS=2 (room standup)" or "... (setting)"."""
        origin = f"room {self.room}" if self.room is not None else "setting"
        return f"{SETTING[self.kind]}={self.days} ({origin})"

    def due(self, since: datetime, now: datetime) -> bool:
        """Whether data whose clock started at `since` is due at `now`."""
        return since + timedelta(days=self.days) <= now


def rule_for(kind: Kind, settings: Settings, room: RoomRetention | None) -> Rule | None:
    """The rule for `kind` in `room` (None: no room); None when the data is kept."""
    if room is not None:
        override = room.days(kind)
        if override is not None:
            return Rule(kind, override, room.name)
    days: int | None = getattr(settings, SETTING[kind])
    return Rule(kind, days, None) if days is not None else None


def shortest_days(kind: Kind, settings: Settings, rooms: dict[str, RoomRetention]) -> int | None:
    """The fewest days any room (or the setting) keeps `kind`: nothing younger than that can
    be due, so a pass reads only older rows. None when every room keeps it."""
    days = [
        rule.days
        for rule in (
            rule_for(kind, settings, None),
            *(rule_for(kind, settings, room) for room in rooms.values()),
        )
        if rule is not None
    ]
    return min(days) if days else None


def stamp(moment: datetime) -> str:
    """A moment as reasons and messages show it: 2026-11-01T10:00:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
