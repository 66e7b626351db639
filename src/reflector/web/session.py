"""Web sessions: the cookie the pages sign in with, and the CSRF tokens that go with it.

Signing in with an API token creates a *session token*: a new row in `api_tokens` for the same
user, named `web-session:<id of the token signed in with>`, whose random secret (`rfs_...`) is
the cookie's value. Like every token it is stored only as a SHA-256 hash. A session is refused
once it is older than `SESSION_MAX_AGE`, once it is revoked (signing out revokes it; so does
`reflector tokens revoke`), and once the API token it was opened with is revoked. Session
secrets are not API tokens: the Bearer header refuses them.

CSRF: a signed-in page carries `csrf_token(secret)`, an HMAC of a fixed label keyed by the
session's secret; an attacker's page can neither read the HttpOnly cookie nor compute it. Every
state-changing request authenticated by the cookie must carry it, in the `csrf_token` form
field or the `X-CSRF-Token` header, and must not come from another origin. The sign-in form,
before any session exists, uses a double-submit cookie (`signin_csrf`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from reflector.auth.models import ApiToken, User
from reflector.auth.tokens import display_prefix, hash_token
from reflector.db.base import utcnow
from reflector.errors import AppError
from reflector.settings import Settings

SESSION_TOKEN_PREFIX = "rfs_"  # noqa: S105 (a marker, not a secret)
SESSION_NAME_PREFIX = "web-session:"
SESSION_MAX_AGE = timedelta(days=14)
SIGNIN_CSRF_MAX_AGE = timedelta(hours=1)
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_CSRF_LABEL = b"reflector web csrf v1"
_LAST_USED_RESOLUTION = timedelta(minutes=5)


class CsrfRejected(AppError):
    """A cookie-authenticated state change without a valid CSRF token, or from elsewhere."""

    status_code = 403
    code = "csrf_failed"


@dataclass(frozen=True)
class WebSession:
    user: User
    token: ApiToken
    secret: str

    @property
    def csrf(self) -> str:
        return csrf_token(self.secret)


def is_secure(settings: Settings) -> bool:
    return settings.BASE_URL.scheme == "https"


def session_cookie_name(settings: Settings) -> str:
    # The __Host- prefix (HTTPS only) pins the cookie to this host and path /.
    return "__Host-reflector_session" if is_secure(settings) else "reflector_session"


def signin_cookie_name(settings: Settings) -> str:
    return "__Host-reflector_signin" if is_secure(settings) else "reflector_signin"


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def csrf_token(secret: str) -> str:
    return hmac.new(secret.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def same_token(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site (Origin, or failing
    that Referer); requests that send neither (curl, old browsers) pass: the CSRF token is the
    check that counts."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed:
        return True
    allowed = {
        _origin(str(_settings(request).BASE_URL)),
        _origin(str(request.base_url)),
    }
    return _origin(claimed) in allowed


def check_csrf(request: Request, session: WebSession, submitted: str | None) -> None:
    """Raises CsrfRejected unless `submitted` is the session's token and the request comes
    from this site."""
    if not same_origin(request):
        raise CsrfRejected(
            "This request came from another site; state changes are accepted only from "
            "Reflector's own pages."
        )
    if not same_token(submitted, session.csrf):
        raise CsrfRejected(
            "The CSRF token is missing or wrong: send the page's token in the X-CSRF-Token "
            "header (or the csrf_token form field), or reload the page and try again. API "
            "clients should send 'Authorization: Bearer <token>' instead of the cookie."
        )


def has_session_cookie(request: Request) -> bool:
    return bool(request.cookies.get(session_cookie_name(_settings(request))))


async def load_session(
    db: AsyncSession, request: Request, *, now: datetime | None = None
) -> WebSession | None:
    """The session the request's cookie names, when it is valid; None otherwise."""
    secret = request.cookies.get(session_cookie_name(_settings(request)))
    if not secret or not secret.startswith(SESSION_TOKEN_PREFIX) or len(secret) > 200:
        return None
    now = now or utcnow()
    row = (
        await db.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == hash_token(secret), ApiToken.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    token, user = row
    if not token.name.startswith(SESSION_NAME_PREFIX) or now - token.created_at > SESSION_MAX_AGE:
        return None
    parent = await db.get(ApiToken, token.name.removeprefix(SESSION_NAME_PREFIX))
    if parent is None or parent.revoked_at is not None or parent.user_id != user.id:
        return None
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        token.last_used_at = now
        await db.commit()
    return WebSession(user=user, token=token, secret=secret)


async def open_session(db: AsyncSession, api_secret: str) -> WebSession | None:
    """A new session for the owner of the API token `api_secret`; None when that token is
    unknown, revoked, or itself a session. The caller commits."""
    if not api_secret or api_secret.startswith(SESSION_TOKEN_PREFIX):
        return None
    row = (
        await db.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == hash_token(api_secret), ApiToken.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    parent, user = row
    if parent.name.startswith(SESSION_NAME_PREFIX):
        return None
    secret = SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    token = ApiToken(
        user_id=user.id,
        name=f"{SESSION_NAME_PREFIX}{parent.id}",
        token_hash=hash_token(secret),
        token_prefix=display_prefix(secret),
        created_at=now,
        last_used_at=now,
    )
    parent.last_used_at = now
    db.add(token)
    await db.flush()
    return WebSession(user=user, token=token, secret=secret)


async def close_session(db: AsyncSession, web_session: WebSession) -> None:
    """Revoke the session's token. The caller commits."""
    web_session.token.revoked_at = utcnow()
    await db.flush()


def set_session_cookie(response: Response, settings: Settings, secret: str) -> None:
    response.set_cookie(
        session_cookie_name(settings),
        secret,
        max_age=int(SESSION_MAX_AGE.total_seconds()),
        path="/",
        secure=is_secure(settings),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        session_cookie_name(settings),
        path="/",
        secure=is_secure(settings),
        httponly=True,
        samesite="lax",
    )


def signin_csrf(request: Request) -> str:
    """The sign-in form's double-submit value: the one in the request's cookie, or a new one
    (the caller sets it with set_signin_cookie)."""
    current = request.cookies.get(signin_cookie_name(_settings(request)))
    if current and 20 <= len(current) <= 100:
        return current
    return secrets.token_urlsafe(32)


def set_signin_cookie(response: Response, settings: Settings, value: str) -> None:
    response.set_cookie(
        signin_cookie_name(settings),
        value,
        max_age=int(SIGNIN_CSRF_MAX_AGE.total_seconds()),
        path="/",
        secure=is_secure(settings),
        httponly=True,
        samesite="strict",
    )


def clear_signin_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        signin_cookie_name(settings),
        path="/",
        secure=is_secure(settings),
        httponly=True,
        samesite="strict",
    )


def check_signin_csrf(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(signin_cookie_name(_settings(request)))
    return bool(cookie) and same_origin(request) and same_token(submitted, str(cookie))


def safe_next(target: str | None) -> str:
    """`target` when it is a path on this site, else "/": never another host."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(ord(ch) < 0x20 or ch == "\\" for ch in target) or len(target) > 2000:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


async def purge_sessions(db: AsyncSession, now: datetime) -> int:
    """Delete the rows of sessions that can no longer be used: past SESSION_MAX_AGE, or
    signed out (revoked) a day ago or more. Each sign-in adds a row, so without this the
    table only grows. Returns how many went; the caller commits."""
    result: CursorResult[Any] = await db.execute(  # type: ignore[assignment]
        delete(ApiToken).where(
            ApiToken.name.startswith(SESSION_NAME_PREFIX, autoescape=True),
            (ApiToken.created_at < now - SESSION_MAX_AGE)
            | (ApiToken.revoked_at < now - timedelta(days=1)),
        )
    )
    return int(result.rowcount)
