"""Per-address limits on the webhook route: few failed verifications, many verified events.

In memory by default; shared through Redis when REDIS_URL is set (several replicas).
"""

from __future__ import annotations

from typing import cast

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string

from reflector.logs import get_logger

_log = get_logger("reflector.webhooks.ratelimit")


class WebhookLimiter:
    def __init__(
        self, *, failures_per_minute: int, requests_per_minute: int, redis_url: str | None
    ) -> None:
        storage = (
            # redis-py, the client the job engine already uses, rather than coredis.
            cast(Storage, storage_from_string("async+" + redis_url, implementation="redispy"))
            if redis_url
            else MemoryStorage()
        )
        self._limiter = FixedWindowRateLimiter(storage)
        self._failures = RateLimitItemPerMinute(failures_per_minute)
        self._verified = RateLimitItemPerMinute(requests_per_minute)

    async def failures_exhausted(self, client: str) -> bool:
        return not await self._guard(self._limiter.test(self._failures, "fail", client))

    async def record_failure(self, client: str) -> None:
        await self._guard(self._limiter.hit(self._failures, "fail", client))

    async def allow_verified(self, client: str) -> bool:
        return await self._guard(self._limiter.hit(self._verified, "ok", client))

    async def _guard(self, check: object) -> bool:
        # A limiter whose store is down must not stop webhooks: fail open, loudly.
        try:
            return bool(await check)  # type: ignore[misc]
        except Exception as exc:
            _log.warning("rate limiter unavailable; allowing the request", error=str(exc))
            return True
