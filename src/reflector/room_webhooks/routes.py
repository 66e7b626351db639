"""The room's outgoing webhook: its secret, its delivery log, a test event. Owner only: another
user's room is reported as missing (rooms.service.get_room)."""

from __future__ import annotations

from collections import defaultdict

import httpx
from fastapi import APIRouter, Request
from sqlalchemy import select

from reflector.auth.dependencies import CurrentUser
from reflector.db.base import utcnow
from reflector.deps import SessionDep, SettingsDep
from reflector.errors import Conflict
from reflector.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, keyset_page
from reflector.room_webhooks.dispatcher import send_test
from reflector.room_webhooks.models import WebhookAttempt, WebhookDelivery
from reflector.room_webhooks.schemas import DeliveryOut, WebhookTestOut
from reflector.room_webhooks.signing import new_secret
from reflector.rooms import service as rooms
from reflector.rooms.schemas import RoomOut

router = APIRouter(prefix="/v1/rooms", tags=["room webhooks"])

_REF = "A room id (`room_...`) or the room's name."


def _no_url(name: str) -> Conflict:
    return Conflict(
        f"Room '{name}' has no webhook_url, so there is nowhere to send to; set one first with "
        f'PATCH /v1/rooms/{name} {{"webhook_url": "https://..."}}.'
    )


@router.post(
    "/{ref}/webhook/secret",
    summary="Replace the room's webhook signing secret; the new one is shown once",
    description=_REF + " Every request from now on, retries of earlier events included, is "
    "signed with the new secret: update the receiver right away.",
)
async def rotate_secret(ref: str, user: CurrentUser, session: SessionDep) -> RoomOut:
    room = await rooms.get_room(session, user, ref)
    secret = new_secret()
    room.webhook_secret = secret
    await session.commit()
    return RoomOut.model_validate(room).with_secret(secret)


@router.get(
    "/{ref}/webhook/deliveries",
    summary="The room's webhook deliveries with their attempts, newest first",
    description=_REF,
)
async def list_deliveries(
    ref: str,
    user: CurrentUser,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[DeliveryOut]:
    room = await rooms.get_room(session, user, ref)
    query = select(WebhookDelivery).where(WebhookDelivery.room_id == room.id)
    deliveries, next_cursor = await keyset_page(
        session, query, WebhookDelivery, limit=limit, cursor=cursor, newest_first=True
    )
    attempts: dict[str, list[WebhookAttempt]] = defaultdict(list)
    if deliveries:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_([d.id for d in deliveries]))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number, WebhookAttempt.id)
        )
        for attempt in rows:
            attempts[attempt.delivery_id].append(attempt)
    return Page[DeliveryOut](
        items=[DeliveryOut.of(d, attempts[d.id]) for d in deliveries], next_cursor=next_cursor
    )


@router.post(
    "/{ref}/webhook/test",
    summary="Send a signed `test` event to the room's webhook URL now, once",
    description=_REF + " Answers 200 whatever the receiver answered: `succeeded`, its "
    "`status_code` or the `error`. The event is in the delivery log too; it is not retried.",
)
async def test_webhook(
    ref: str, request: Request, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> WebhookTestOut:
    room = await rooms.get_room(session, user, ref)
    if room.webhook_url is None:
        raise _no_url(room.name)
    room_id, name = room.id, room.name
    # Give the connection back to the pool for the request, which may take the full timeout.
    await session.commit()
    async with httpx.AsyncClient() as http:
        result = await send_test(request.app.state.engine, http, settings, room_id, utcnow())
    if result is None:  # the URL was removed meanwhile
        raise _no_url(name)
    return WebhookTestOut(
        delivery_id=result.delivery_id,
        succeeded=result.outcome == "succeeded",
        status_code=result.status_code,
        error=result.error,
        duration_ms=result.duration_ms,
    )
