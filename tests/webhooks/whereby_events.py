"""Building signed Whereby webhook requests the way Whereby sends them."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from reflector.platforms.whereby.signature import sign
from tests.conftest import WEBHOOK_SECRET

BASE_TIME = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    when = BASE_TIME + timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def envelope(
    kind: str, data: dict[str, Any], *, created: float = 0, event_id: str = ""
) -> dict[str, Any]:
    return {
        "id": event_id or secrets.token_hex(32),
        "apiVersion": "1.0",
        "createdAt": at(created),
        "type": kind,
        "data": data,
    }


def client_event(
    kind: str,
    meeting_id: str,
    room_name: str,
    participant: str,
    num_clients: int,
    *,
    created: float = 0,
    name: str = "",
    role: str = "visitor",
    event_id: str = "",
) -> dict[str, Any]:
    return envelope(
        f"room.client.{kind}",
        {
            "meetingId": meeting_id,
            "roomName": room_name,
            "roomSessionId": None,
            "participantId": participant,
            "displayName": name or participant,
            "externalId": None,
            "metadata": None,
            "roleName": role,
            "numClients": num_clients,
            "numClientsByRoleName": {role: num_clients} if num_clients else {},
            "isDialIn": False,
            "subdomain": "sandbox",
        },
        created=created,
        event_id=event_id,
    )


def compact(event: dict[str, Any]) -> bytes:
    """Serialised like JavaScript's JSON.stringify, as Whereby does."""
    return json.dumps(event, separators=(",", ":")).encode()


def signed_headers(
    body: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    t = int(time.time()) if timestamp is None else timestamp
    return {"Content-Type": "application/json", "Whereby-Signature": sign(body, secret, t)}
