"""The current-user dependency: `Authorization: Bearer <token>`, or the web pages' session
cookie (with a CSRF token on state-changing requests; see reflector.web.session)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from reflector.auth import service
from reflector.auth.models import User
from reflector.deps import SessionDep
from reflector.errors import Unauthorized
from reflector.web import session as web_session

_HOW_TO = (
    "Send 'Authorization: Bearer <token>'. Create a token with "
    "'reflector tokens create EMAIL' (the first 'reflector serve' on an empty database prints one)."
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized(f"This route needs an API token. {_HOW_TO}", headers=_CHALLENGE)
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        raise Unauthorized(
            f"The Authorization header must use the Bearer scheme. {_HOW_TO}",
            headers={"WWW-Authenticate": 'Bearer error="invalid_request"'},
        )
    if credentials.startswith(web_session.SESSION_TOKEN_PREFIX):
        raise Unauthorized(
            f"That is a web session's cookie, not an API token. {_HOW_TO}",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return credentials


async def _cookie_user(request: Request, session: SessionDep) -> User | None:
    """The signed-in user of a valid session cookie (None without one); a state change must
    carry the session's CSRF token in X-CSRF-Token."""
    found = await web_session.load_session(session, request)
    if found is None:
        return None
    if request.method not in web_session.SAFE_METHODS:
        web_session.check_csrf(request, found, request.headers.get(web_session.CSRF_HEADER))
    return found.user


async def current_user(request: Request, session: SessionDep) -> User:
    if request.headers.get("authorization") is None and web_session.has_session_cookie(request):
        user = await _cookie_user(request, session)
        if user is not None:
            return user
        raise Unauthorized(
            "The session cookie is expired, signed out or unknown: sign in again at /signin. "
            f"API clients: {_HOW_TO}",
            headers=_CHALLENGE,
        )
    secret = _bearer(request)
    user = await service.authenticate(session, secret)
    if user is None:
        raise Unauthorized(
            f"The API token is unknown or revoked. {_HOW_TO}",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    # authenticate() may have touched last_used_at; persist it with this request's session.
    if session.dirty:
        await session.commit()
    return user


async def optional_user(request: Request, session: SessionDep) -> User | None:
    """The caller when it sent credentials (checked as strictly as current_user), else None:
    for routes that also answer anonymous callers (public transcript links). A session cookie
    that is no longer valid counts as no credentials."""
    if request.headers.get("authorization") is None:
        if web_session.has_session_cookie(request):
            return await _cookie_user(request, session)
        return None
    return await current_user(request, session)


CurrentUser = Annotated[User, Depends(current_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]
