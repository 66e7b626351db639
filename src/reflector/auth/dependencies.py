"""The current-user dependency: `Authorization: Bearer <token>` on every protected route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from reflector.auth import service
from reflector.auth.models import User
from reflector.deps import SessionDep
from reflector.errors import Unauthorized

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
    return credentials


async def current_user(request: Request, session: SessionDep) -> User:
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
    for routes that also answer anonymous callers (public transcript links)."""
    if request.headers.get("authorization") is None:
        return None
    return await current_user(request, session)


CurrentUser = Annotated[User, Depends(current_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]
