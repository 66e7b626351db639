"""Imports every feature's models so that Base.metadata knows all tables (Alembic, tests)."""

from reflector.auth.models import ApiToken, User
from reflector.db.base import Base
from reflector.jobs.models import Lease
from reflector.meetings.models import Meeting, MeetingClaim, MeetingSession, Participant
from reflector.recordings.models import Recording
from reflector.rooms.models import Room
from reflector.transcripts.models import Transcript
from reflector.webhooks.models import WebhookEvent, WebhookRejection

__all__ = [
    "ApiToken",
    "Base",
    "Lease",
    "Meeting",
    "MeetingClaim",
    "MeetingSession",
    "Participant",
    "Recording",
    "Room",
    "Transcript",
    "User",
    "WebhookEvent",
    "WebhookRejection",
]
