"""Imports every feature's models so that Base.metadata knows all tables (Alembic, tests)."""

from reflector.auth.models import ApiToken, User
from reflector.db.base import Base
from reflector.meetings.models import Meeting, MeetingClaim, MeetingSession, Participant
from reflector.rooms.models import Room
from reflector.webhooks.models import WebhookEvent, WebhookRejection

__all__ = [
    "ApiToken",
    "Base",
    "Meeting",
    "MeetingClaim",
    "MeetingSession",
    "Participant",
    "Room",
    "User",
    "WebhookEvent",
    "WebhookRejection",
]
