from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from reflector.room_webhooks.models import WebhookAttempt, WebhookDelivery


class AttemptOut(BaseModel):
    number: int
    attempted_at: datetime
    status_code: int | None  # the receiver's answer; null when there was none
    error: str | None  # what went wrong, in a sentence
    duration_ms: int
    outcome: str  # succeeded, retrying or failed


class DeliveryOut(BaseModel):
    id: str
    event: str
    url: str
    status: str  # pending, succeeded or failed
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    # The body as stored; links are sent under BASE_URL.
    payload: dict[str, Any]
    attempts: list[AttemptOut]

    @classmethod
    def of(cls, delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryOut:
        return cls(
            id=delivery.id,
            event=delivery.event,
            url=delivery.url,
            status=delivery.status,
            next_attempt_at=delivery.next_attempt_at,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            finished_at=delivery.finished_at,
            payload=json.loads(delivery.payload),
            attempts=[
                AttemptOut(
                    number=a.number,
                    attempted_at=a.attempted_at,
                    status_code=a.status_code,
                    error=a.error,
                    duration_ms=a.duration_ms,
                    outcome=a.outcome,
                )
                for a in attempts
            ],
        )


class WebhookTestOut(BaseModel):
    """The answer to a test event; the same delivery appears in the delivery log."""

    delivery_id: str
    succeeded: bool
    status_code: int | None
    error: str | None
    duration_ms: int
