"""POST /v1/<platform>: verify, store once, apply. Lean on purpose: this is the hot path."""

from __future__ import annotations

import time
from collections.abc import Iterable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from reflector.db.base import utcnow
from reflector.errors import RateLimited, error_response, json_error
from reflector.logs import get_logger
from reflector.platforms.base import (
    EventKind,
    InvalidWebhookPayload,
    VideoPlatform,
    WebhookRejected,
)
from reflector.recordings.announcements import recording_finished
from reflector.webhooks import inbox
from reflector.webhooks.ratelimit import WebhookLimiter

_log = get_logger("reflector.webhooks")

# OSError too: a refused connection surfaces from the driver before SQLAlchemy wraps it.
_RETRY_LATER = (
    "The event could not be stored just now; it was not applied. The platform retries "
    "deliveries that get a 5xx answer."
)


def webhook_router(platform_name: str) -> APIRouter:
    """The route, for the API description and other methods' 405: `WebhookLane` answers POSTs."""
    router = APIRouter(tags=["webhooks"])

    @router.post(
        f"/v1/{platform_name}",
        summary=f"Receive {platform_name} webhooks (signed; no token)",
        response_model=None,
    )
    async def receive(request: Request) -> JSONResponse:
        return await receive_webhook(request, platform_name)

    return router


class WebhookLane:
    """POST /v1/<platform> straight to `receive_webhook`, past FastAPI's exception, routing and
    dependency layers, which cost about a tenth of a worker's CPU per event under load.

    Installed inside the other middleware: request ids, access logs, the body size limit,
    security headers and CORS apply as on every route.
    """

    def __init__(self, app: ASGIApp, platforms: Iterable[str]) -> None:
        self.app = app
        self.paths = {f"/v1/{name}": name for name in platforms}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            platform = self.paths.get(scope["path"])
            if platform is not None:
                response = await receive_webhook(Request(scope, receive), platform)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def receive_webhook(request: Request, platform_name: str) -> JSONResponse:
    """Verify, store once, apply; never a 500 (the platform retries 5xx)."""
    platform: VideoPlatform = request.app.state.platforms[platform_name]
    limiter: WebhookLimiter = request.app.state.webhook_limiter
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    client = request.client.host if request.client else "unknown"
    try:
        if await limiter.failures_exhausted(client):
            return _rate_limited(
                "Too many webhook requests from this address failed verification; wait a minute."
            )
        body = await request.body()
        try:
            platform.verify_webhook(body, request.headers, time.time())
            event = platform.parse_webhook(body)
        except (WebhookRejected, InvalidWebhookPayload) as exc:
            reason = getattr(exc, "reason", "invalid_payload")
            await limiter.record_failure(client)
            _log.warning("webhook rejected", platform=platform_name, reason=reason)
            await _record_rejection(factory, platform_name, reason, client)
            return error_response(exc)
        if not await limiter.allow_verified(client):
            return _rate_limited("Too many webhook events from this address; slow down.")
        outcome = await inbox.receive_event(
            request.app.state.engine, platform_name, event, body.decode("utf-8"), utcnow()
        )
        if event.kind is EventKind.recording_finished:
            # Redeliveries too: if the intake failed the first time (503), Whereby's
            # retry is the second chance. The intake is idempotent.
            await recording_finished(request.app.state.intake, request.app.state.settings, event)
        return JSONResponse({"status": outcome, "event_id": event.event_id})
    except HTTPException:
        # A body over the limit while streaming: the size-limit middleware answers 413.
        raise
    except (SQLAlchemyError, OSError) as exc:
        _log.error("webhook not stored: database error", error=str(exc))
        return json_error(503, "database_unavailable", _RETRY_LATER)
    except Exception as exc:
        # Never a 500 here: the platform retries 5xx, and 503 says "later" honestly.
        _log.error("webhook not processed", exc_info=exc)
        return json_error(503, "webhook_failed", _RETRY_LATER)


async def _record_rejection(
    factory: async_sessionmaker[AsyncSession], platform: str, reason: str, client: str
) -> None:
    # The caller's answer (400/401/503) matters more than this record: never let it fail them.
    try:
        async with factory() as session:
            await inbox.record_rejection(session, platform, reason, client, utcnow())
            await session.commit()
    except (SQLAlchemyError, OSError) as exc:
        _log.warning("could not record a webhook rejection", error=str(exc))


def _rate_limited(detail: str) -> JSONResponse:
    return error_response(RateLimited(detail, headers={"Retry-After": "60"}))
