"""Timestamps the way Whereby writes them: UTC, millisecond precision, a trailing `Z`."""

from __future__ import annotations

from datetime import UTC, datetime

from reflector.platforms.whereby.events import iso_ms

__all__ = ["iso_ms", "parse_iso", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_iso(text: str) -> datetime:
    """An ISO-8601 timestamp; one without a zone is taken as UTC. Raises ValueError."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
