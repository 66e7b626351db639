"""The Whereby REST client: meetings, room sessions and room theming.

The caller owns the `httpx.AsyncClient` (timeouts, connection pool, lifetime); this client adds
the bearer key, bounded retries with back-off (honouring 429 `Retry-After`) and errors whose
detail tells the operator what to do. The API key never appears in a message or a log line.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from reflector.errors import BadGateway, ServiceUnavailable
from reflector.logs import get_logger
from reflector.platforms.whereby.models import WherebyMeeting, WherebyModel, WherebyRoomSession

__all__ = [
    "WherebyBadRequest",
    "WherebyClient",
    "WherebyError",
    "WherebyForbidden",
    "WherebyInvalidResponse",
    "WherebyMeeting",
    "WherebyNotConfigured",
    "WherebyNotFound",
    "WherebyRateLimited",
    "WherebyRejected",
    "WherebyRoomSession",
    "WherebyUnauthorized",
    "WherebyUnavailable",
]

_log = get_logger(__name__)

M = TypeVar("M", bound=WherebyModel)

# A room has few sessions; this only stops a server that keeps handing out cursors.
MAX_SESSION_PAGES = 100
_JITTER = 0.1
_QUOTED_MESSAGE_MAX = 300
_HOW_TO_GET_A_KEY = "Create a new key in the Whereby dashboard under Configure > API"


class WherebyNotConfigured(ServiceUnavailable):
    """No API key: nothing was sent. 503, not 502, because Whereby did nothing wrong; this
    service cannot do the job until it is configured."""

    code = "whereby_not_configured"


class WherebyError(BadGateway):
    """Whereby answered badly or not at all. `upstream_status` is Whereby's status, if any."""

    code = "whereby_error"

    def __init__(
        self,
        detail: str,
        *,
        upstream_status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail, headers=headers)
        self.upstream_status = upstream_status


class WherebyUnauthorized(WherebyError):
    code = "whereby_unauthorized"


class WherebyForbidden(WherebyError):
    code = "whereby_forbidden"


class WherebyBadRequest(WherebyError):
    code = "whereby_bad_request"


class WherebyNotFound(WherebyError):
    code = "whereby_not_found"


class WherebyRejected(WherebyError):
    """Any other 4xx."""

    code = "whereby_rejected"


class WherebyInvalidResponse(WherebyError):
    """A success status with a body that is not what the API promises (or an odd status)."""

    code = "whereby_invalid_response"


class WherebyUnavailable(WherebyError):
    """Retries exhausted on 5xx, timeouts or connection failures."""

    code = "whereby_unavailable"

    def __init__(
        self,
        detail: str,
        *,
        attempts: int,
        last: str,
        upstream_status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail, upstream_status=upstream_status, headers=headers)
        self.attempts = attempts
        self.last = last


class WherebyRateLimited(WherebyUnavailable):
    """Retries exhausted while Whereby kept answering 429."""

    code = "whereby_rate_limited"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class WherebyClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: str | None,
        base_url: str,
        max_retries: int = 3,
        retry_after_max: float = 30.0,
        backoff_base: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self._http = http
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._max_retries = max_retries
        self._retry_after_max = max(0.0, retry_after_max)
        self._backoff_base = max(0.0, backoff_base)
        self._sleep = sleep

    # -- meetings -------------------------------------------------------------------------

    async def create_meeting(self, body: dict[str, Any]) -> WherebyMeeting:
        """POST /meetings with `body` as given (camelCase, Whereby's own field names)."""
        response = await self._call("POST", "/meetings", "creating a meeting", json=body)
        return self._parse(response, WherebyMeeting, "POST /meetings")

    async def get_meeting(
        self, meeting_id: str, *, host_url: bool = False
    ) -> WherebyMeeting | None:
        """The meeting, or None when Whereby no longer knows it."""
        path = f"/meetings/{quote(meeting_id, safe='')}"
        params = {"fields": "hostRoomUrl"} if host_url else None
        response = await self._call(
            "GET", path, "reading a meeting", params=params, missing_ok=True
        )
        if response.status_code == 404:
            return None
        return self._parse(response, WherebyMeeting, f"GET {path}")

    async def delete_meeting(self, meeting_id: str) -> None:
        """End the meeting now. Deleting a meeting that is already gone is not an error."""
        path = f"/meetings/{quote(meeting_id, safe='')}"
        await self._call("DELETE", path, "ending a meeting", missing_ok=True)

    # -- insights -------------------------------------------------------------------------

    async def room_sessions(self, room_name: str) -> list[WherebyRoomSession]:
        """Every session of a room, following `cursor` pages up to MAX_SESSION_PAGES."""
        path = "/insights/room-sessions"
        name = "/" + room_name.lstrip("/")
        sessions: list[WherebyRoomSession] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_SESSION_PAGES):
            params = {"roomName": name}
            if cursor is not None:
                params["cursor"] = cursor
            response = await self._call("GET", path, "listing room sessions", params=params)
            data = self._json(response, f"GET {path}")
            results = data.get("results") if isinstance(data, dict) else None
            if not isinstance(results, list):
                raise WherebyInvalidResponse(
                    f"Whereby answered GET {path} without a `results` list; check that "
                    f"WHEREBY_API_URL ({self._base_url}) points at Whereby's API.",
                    upstream_status=response.status_code,
                )
            sessions.extend(
                self._parse_item(item, WherebyRoomSession, f"GET {path}") for item in results
            )
            next_cursor = data.get("cursor")
            if not isinstance(next_cursor, str) or not next_cursor or next_cursor in seen:
                return sessions
            seen.add(next_cursor)
            cursor = next_cursor
        _log.warning("whereby.room_sessions_truncated", room_name=name, pages=MAX_SESSION_PAGES)
        return sessions

    # -- room theming ---------------------------------------------------------------------

    async def set_room_logo(
        self, room_name: str, image: bytes, filename: str, content_type: str
    ) -> None:
        path = f"/rooms/{self._room_segment(room_name)}/theme/logo"
        await self._call(
            "PUT", path, "setting the room logo", files={"image": (filename, image, content_type)}
        )

    async def set_room_colors(
        self, room_name: str, *, primary: str | None, secondary: str | None, focus: str | None
    ) -> None:
        """Send only the colours given; with none given there is nothing to send."""
        given = {"primary": primary, "secondary": secondary, "focus": focus}
        colors = {name: value for name, value in given.items() if value is not None}
        if not colors:
            return
        path = f"/rooms/{self._room_segment(room_name)}/theme/tokens"
        await self._call(
            "PUT", path, "setting the room colours", json={"tokens": {"colors": colors}}
        )

    # -- key check ------------------------------------------------------------------------

    async def check_key(self) -> bool:
        """True when Whereby accepts the key, False when it refuses it (401)."""
        try:
            await self._call("GET", "/meetings", "checking the API key", params={"limit": "1"})
        except WherebyUnauthorized:
            return False
        return True

    # -- plumbing -------------------------------------------------------------------------

    @staticmethod
    def _room_segment(room_name: str) -> str:
        return quote(room_name.lstrip("/"), safe="")

    def _headers(self) -> dict[str, str]:
        if self._api_key is None:
            raise WherebyNotConfigured(
                "WHEREBY_API_KEY is not set, so Reflector cannot call Whereby. "
                f"{_HOW_TO_GET_A_KEY}, set WHEREBY_API_KEY to it and restart Reflector."
            )
        return {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}

    def _backoff(self, attempt: int) -> float:
        delay: float = self._backoff_base * 2.0**attempt
        # Jitter spreads out replicas that failed together; it needs no cryptographic quality.
        delay += delay * _JITTER * random.random()  # noqa: S311
        return min(delay, self._retry_after_max)

    def _rate_limit_wait(self, response: httpx.Response, attempt: int) -> float:
        wait = _retry_after_seconds(response.headers.get("Retry-After"))
        if wait is None:
            wait = _ms_left_seconds(response)
        if wait is None:
            wait = self._backoff(attempt)
        return min(max(wait, 0.0), self._retry_after_max)

    async def _call(
        self,
        method: str,
        path: str,
        doing: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        missing_ok: bool = False,
    ) -> httpx.Response:
        """The 2xx response, or the 404 one when `missing_ok`; anything else raises."""
        headers = self._headers()
        url = f"{self._base_url}{path}"
        attempts = self._max_retries + 1
        last = ""
        last_status: int | None = None
        wait = 0.0
        for attempt in range(attempts):
            try:
                response = await self._http.request(
                    method, url, headers=headers, params=params, json=json, files=files
                )
            except httpx.TimeoutException as exc:
                last, last_status = f"timed out ({type(exc).__name__})", None
                wait = self._backoff(attempt)
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                last, last_status = f"connection failed: {type(exc).__name__}: {exc}", None
                wait = self._backoff(attempt)
            except httpx.HTTPError as exc:
                # Malformed URL, unsupported scheme, proxy trouble: retrying cannot help.
                raise WherebyError(
                    f"Could not send {method} {path} to Whereby at {self._base_url} "
                    f"({type(exc).__name__}: {exc}); check WHEREBY_API_URL."
                ) from exc
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response
                if status == 404 and missing_ok:
                    return response
                if status == 429:
                    last, last_status = "429 rate limited", status
                    wait = self._rate_limit_wait(response, attempt)
                elif status >= 500:
                    last, last_status = str(status), status
                    wait = self._backoff(attempt)
                else:
                    raise self._refusal(method, path, doing, response)
            if attempt + 1 < attempts:
                _log.warning(
                    "whereby.retry",
                    method=method,
                    path=path,
                    attempt=attempt + 1,
                    max_attempts=attempts,
                    reason=last,
                    wait_s=round(wait, 3),
                )
                await self._sleep(wait)
        tried = _plural(attempts, "attempt")
        _log.warning("whereby.gave_up", method=method, path=path, attempts=attempts, reason=last)
        if last_status == 429:
            raise WherebyRateLimited(
                f"Whereby kept rate-limiting Reflector while {doing}: no success after {tried} "
                f"(last: {last}). The account's per-minute request limit is used up; try again "
                "in a minute.",
                attempts=attempts,
                last=last,
                upstream_status=429,
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        raise WherebyUnavailable(
            f"Whereby did not answer after {tried} (last: {last}) while {doing}. "
            "Whereby may be down or unreachable from this server; try again later.",
            attempts=attempts,
            last=last,
            upstream_status=last_status,
        )

    def _refusal(
        self, method: str, path: str, doing: str, response: httpx.Response
    ) -> WherebyError:
        status = response.status_code
        message = self._quoted_message(response)
        said = f' Whereby said: "{message}".' if message else ""
        if status == 401:
            return WherebyUnauthorized(
                "Whereby refused WHEREBY_API_KEY as wrong or expired (401) while "
                f"{doing}. {_HOW_TO_GET_A_KEY}, set WHEREBY_API_KEY to it and restart Reflector.",
                upstream_status=status,
            )
        if status == 403:
            return WherebyForbidden(
                f"Whereby refused {doing} for this account (403).{said} Most often the Whereby "
                "plan does not include cloud recording to your own bucket (or the feature "
                "used). Check the plan in the Whereby dashboard, or set the room's "
                "recording_type to local or none.",
                upstream_status=status,
            )
        if status == 400:
            reason = f'"{message}"' if message else "Whereby gave no reason"
            return WherebyBadRequest(
                f"Whereby rejected {doing} as a bad request (400): {reason}. "
                "Check the room's settings (recording, room mode, name) against that message.",
                upstream_status=status,
            )
        if status == 404:
            return WherebyNotFound(
                f"Whereby found nothing at {method} {path} (404) while {doing}. If every call "
                f"fails like this, check WHEREBY_API_URL (now {self._base_url}).",
                upstream_status=status,
            )
        if 400 <= status < 500:
            return WherebyRejected(
                f"Whereby refused {doing} with status {status}.{said}",
                upstream_status=status,
            )
        # httpx does not follow redirects here, and 1xx never reaches us: a proxy or wrong URL.
        return WherebyInvalidResponse(
            f"Whereby answered {method} {path} with unexpected status {status}; check "
            f"WHEREBY_API_URL (now {self._base_url}).",
            upstream_status=status,
        )

    def _quoted_message(self, response: httpx.Response) -> str:
        message = ""
        try:
            data = response.json()
        except ValueError:
            message = response.text.strip()
        else:
            if isinstance(data, dict):
                for key in ("error", "message", "detail"):
                    if isinstance(data.get(key), str):
                        message = data[key]
                        break
        message = " ".join(message.split())
        # Whereby has no reason to echo the key, but the detail reaches API callers.
        if self._api_key:
            message = message.replace(self._api_key, "***")
        if len(message) > _QUOTED_MESSAGE_MAX:
            message = message[: _QUOTED_MESSAGE_MAX - 3] + "..."
        return message

    def _json(self, response: httpx.Response, call: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise WherebyInvalidResponse(
                f"Whereby answered {call} with {response.status_code} but the body is not valid "
                f"JSON; check that WHEREBY_API_URL ({self._base_url}) points at Whereby's API.",
                upstream_status=response.status_code,
            ) from exc

    def _parse(self, response: httpx.Response, model: type[M], call: str) -> M:
        return self._parse_item(self._json(response, call), model, call)

    @staticmethod
    def _parse_item(data: Any, model: type[M], call: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            # Field locations and messages only: the values could be long or private.
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
                for error in exc.errors()[:5]
            )
            raise WherebyInvalidResponse(
                f"Whereby's answer to {call} is not in the expected shape ({problems}).",
            ) from None


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date (RFC 9110 allows both)."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return seconds


def _ms_left_seconds(response: httpx.Response) -> float | None:
    try:
        data = response.json()
    except ValueError:
        return None
    inner = data.get("data") if isinstance(data, dict) else None
    ms_left = inner.get("msLeft") if isinstance(inner, dict) else None
    if isinstance(ms_left, bool) or not isinstance(ms_left, int | float):
        return None
    return float(ms_left) / 1000
