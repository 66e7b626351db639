"""Imports every feature's models so that Base.metadata knows all tables (Alembic, tests)."""

from reflector.auth.models import ApiToken, User
from reflector.db.base import Base
from reflector.jobs.models import Lease
from reflector.meetings.models import Meeting, MeetingClaim, MeetingSession, Participant
from reflector.metrics.models import MetricCounter
from reflector.recordings.models import Recording
from reflector.retention.models import RetentionDeletion
from reflector.room_webhooks.models import WebhookAttempt, WebhookDelivery
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
    "MetricCounter",
    "Participant",
    "Recording",
    "RetentionDeletion",
    "Room",
    "Transcript",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookRejection",
]
