"""User and token operations. Callers own the session and commit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from reflector.auth.models import ApiToken, User
from reflector.auth.tokens import display_prefix, generate_token, hash_token
from reflector.db.base import utcnow
from reflector.errors import BadRequest, Conflict, NotFound

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
# Writing last_used_at on every request would turn every read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=5)


@dataclass(frozen=True)
class IssuedToken:
    """A freshly created token: `secret` exists only here and is never stored."""

    token: ApiToken
    secret: str


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise BadRequest(f"'{email}' is not an e-mail address; give one like ada@example.com.")
    return email


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(User.email == normalise_email(email)))
    return result.scalar_one_or_none()


async def require_user_by_email(session: AsyncSession, email: str) -> User:
    user = await get_user_by_email(session, email)
    if user is None:
        raise NotFound(
            f"No user with e-mail {normalise_email(email)}; "
            "create one with 'reflector users create EMAIL'."
        )
    return user


async def create_user(session: AsyncSession, email: str, *, is_admin: bool = False) -> User:
    email = normalise_email(email)
    if await get_user_by_email(session, email) is not None:
        raise Conflict(f"A user with e-mail {email} already exists.")
    user = User(email=email, is_admin=is_admin)
    session.add(user)
    await session.flush()
    return user


async def list_users(session: AsyncSession) -> list[User]:
    result = await session.execute(select(User).order_by(User.created_at, User.id))
    return list(result.scalars())


async def count_users(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def create_token(session: AsyncSession, user: User, name: str = "default") -> IssuedToken:
    name = name.strip()
    if not name or len(name) > 100:
        raise BadRequest("A token name must be 1-100 characters.")
    secret = generate_token()
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(secret),
        token_prefix=display_prefix(secret),
    )
    session.add(token)
    await session.flush()
    return IssuedToken(token=token, secret=secret)


async def list_tokens(session: AsyncSession, user: User | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    result = await session.execute(query)
    return list(result.scalars())


async def revoke_token(session: AsyncSession, token_id: str) -> ApiToken:
    token = await session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"No token with id {token_id}; 'reflector tokens list' shows the ids.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await session.flush()
    return token


async def authenticate(
    session: AsyncSession, secret: str, *, now: datetime | None = None
) -> User | None:
    """The user a bearer token belongs to, or None when it is unknown or revoked."""
    now = now or utcnow()
    result = await session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_token(secret), ApiToken.revoked_at.is_(None))
    )
    row = result.first()
    if row is None:
        return None
    token, user = row
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        token.last_used_at = now
    return user


async def bootstrap_admin(session: AsyncSession, email: str) -> IssuedToken | None:
    """On an empty database, create the admin user and its first token; otherwise None."""
    if await count_users(session) > 0:
        return None
    user = await create_user(session, email, is_admin=True)
    return await create_token(session, user, name="bootstrap")
