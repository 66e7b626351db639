"""What each event says, and the body that carries it.

Body: `{"id": <delivery id>, "event": ..., "created_at": <ISO 8601>, "data": {...}}`. The body
is stored with its delivery when the event happens, so every attempt sends the same facts;
only `data.links` are stored as paths and made absolute with BASE_URL when sent, so a fix to
BASE_URL also fixes deliveries still waiting for a retry (and the recording worker, which
enqueues transcript.completed, needs no BASE_URL of its own).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from reflector.meetings.models import Meeting
from reflector.pipeline.export import EXPORT_FORMATS
from reflector.pipeline.types import TranscriptDocument

TRANSCRIPT_COMPLETED = "transcript.completed"
MEETING_ENDED = "meeting.ended"
TEST = "test"

Data = dict[str, Any]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def body(delivery_id: str, event: str, created_at: datetime, data: Data) -> str:
    """The stored body of a delivery (links still as paths)."""
    return json.dumps(
        {"id": delivery_id, "event": event, "created_at": _iso(created_at), "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _absolute(links: Any, base_url: str) -> Any:
    if isinstance(links, dict):
        return {key: _absolute(value, base_url) for key, value in links.items()}
    if isinstance(links, str) and links.startswith("/"):
        return base_url + links
    return links


def render(stored: str, base_url: str) -> bytes:
    """The bytes sent (and signed): the stored body with its links under `base_url`."""
    envelope = json.loads(stored)
    data = envelope.get("data")
    if isinstance(data, dict) and "links" in data:
        data["links"] = _absolute(data["links"], base_url.rstrip("/"))
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def transcript_links(transcript_id: str) -> Data:
    api = f"/v1/transcripts/{transcript_id}"
    return {
        "api": api,
        "web": f"/transcripts/{transcript_id}",
        "exports": {name: f"{api}/export?format={name}" for name in EXPORT_FORMATS},
    }


def room_data(room_id: str, room_name: str) -> Data:
    return {"id": room_id, "name": room_name}


def meeting_data(
    meeting_id: str, start_date: datetime, end_date: datetime, ended_at: datetime | None
) -> Data:
    return {
        "id": meeting_id,
        "start_date": _iso(start_date),
        "end_date": _iso(end_date),
        "ended_at": _iso(ended_at),
    }


def transcript_completed(
    *,
    transcript_id: str,
    doc: TranscriptDocument,
    room: Data,
    meeting: Data | None,
    recording_id: str | None,
) -> Data:
    return {
        "transcript": {
            "id": transcript_id,
            "title": doc.title,
            "short_summary": doc.short_summary,
            "long_summary": doc.long_summary,
            "topics": [topic.model_dump() for topic in doc.topics],
            "action_items": [item.model_dump() for item in doc.action_items],
            "participants": [speaker.name for speaker in doc.speakers],
            "language": doc.language,
            "duration": doc.duration,
        },
        "room": room,
        "meeting": meeting,
        "recording": {"id": recording_id} if recording_id else None,
        "links": transcript_links(transcript_id),
    }


def meeting_ended(meeting: Meeting, room: Data, participants: int | None) -> Data:
    return {
        "meeting": {
            **meeting_data(meeting.id, meeting.start_date, meeting.end_date, meeting.ended_at),
            "end_reason": meeting.end_reason,
            # People (not bots) the platform reported joining; null without any report.
            "participants_count": participants,
        },
        "room": room,
    }


def for_test(room: Data) -> Data:
    return {
        "room": room,
        "message": "A test event from Reflector: this URL receives the room's webhooks.",
    }
