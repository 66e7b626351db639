"""GET /v1/whereby/health: is Whereby configured, reachable, and are its webhooks arriving."""

from __future__ import annotations

import time
from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel

from reflector.db.base import utcnow
from reflector.deps import SessionDep, SettingsDep
from reflector.platforms.base import VideoPlatform
from reflector.webhooks import inbox

router = APIRouter(prefix="/v1/whereby", tags=["webhooks"])

_API_CHECK_TTL_SECONDS = 60.0


class WherebyHealth(BaseModel):
    api_key_configured: bool
    webhook_secret_configured: bool
    api_url: str
    # ok, unauthorized, unreachable or not_configured; cached for a minute.
    api_status: str
    api_checked_at: datetime | None
    last_verified_event_at: datetime | None
    accepted_24h: int
    rejected_24h: int
    rejected_24h_by_reason: dict[str, int]


@router.get("/health", summary="Whereby configuration and webhook health (no token needed)")
async def whereby_health(
    request: Request, session: SessionDep, settings: SettingsDep
) -> WherebyHealth:
    platform: VideoPlatform = request.app.state.platforms["whereby"]
    cache: dict[str, object] = request.app.state.whereby_api_check
    checked = cache.get("monotonic")
    if not isinstance(checked, float) or time.monotonic() - checked > _API_CHECK_TTL_SECONDS:
        cache["status"] = await platform.check_api()
        cache["monotonic"] = time.monotonic()
        cache["at"] = utcnow()
    counts = await inbox.stats(session, "whereby", utcnow())
    checked_at = cache.get("at")
    return WherebyHealth(
        api_key_configured=settings.WHEREBY_API_KEY is not None,
        webhook_secret_configured=settings.WHEREBY_WEBHOOK_SECRET is not None,
        api_url=str(settings.WHEREBY_API_URL),
        api_status=str(cache["status"]),
        api_checked_at=checked_at if isinstance(checked_at, datetime) else None,
        **counts,
    )
