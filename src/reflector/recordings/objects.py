"""What the intake knows about a stored object, whichever way it was announced."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Source(StrEnum):
    sqs = "sqs"
    webhook = "webhook"
    reconciler = "reconciler"


@dataclass(frozen=True)
class StoredObject:
    """An object in a recording bucket (or the local recordings folder)."""

    bucket: str
    key: str
    size: int | None = None
    event_time: datetime | None = None
