from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.auth import service as auth
from reflector.auth.models import ApiToken
from reflector.auth.tokens import hash_token
from reflector.db.engine import create_session_factory
from reflector.errors import BadRequest, Conflict, NotFound
from tests.conftest import Account


async def test_me_returns_the_tokens_user(client: httpx.AsyncClient, alice: Account) -> None:
    response = await client.get("/v1/me", headers=alice.headers)
    assert response.status_code == 200
    assert response.json()["email"] == "alice@example.com"
    assert response.json()["id"] == alice.user_id


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({}, ["needs an API token"]),
        ({"Authorization": "Basic YWxpY2U6cHc="}, ["Bearer scheme"]),
        ({"Authorization": "Bearer"}, ["Bearer scheme"]),
        ({"Authorization": "Bearer rfl_not-a-real-token"}, ["unknown or revoked"]),
    ],
)
async def test_bad_credentials_are_401_with_a_way_out(
    client: httpx.AsyncClient, headers: dict[str, str], words: list[str]
) -> None:
    response = await client.get("/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["error"] == "unauthorized"
    assert "reflector tokens create" in body["detail"]
    for word in words:
        assert word in body["detail"]


async def test_scheme_is_case_insensitive(client: httpx.AsyncClient, alice: Account) -> None:
    response = await client.get("/v1/me", headers={"Authorization": f"bearer {alice.token}"})
    assert response.status_code == 200


async def test_health_needs_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).status_code == 200


async def test_tokens_are_stored_only_as_hashes(engine: AsyncEngine, alice: Account) -> None:
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM api_tokens"))).all()
    stored = " ".join(str(value) for row in rows for value in row)
    assert alice.token not in stored
    assert hash_token(alice.token) in stored


async def test_revoked_token_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    async with create_session_factory(engine)() as session:
        token = await session.scalar(select(ApiToken).where(ApiToken.user_id == alice.user_id))
        assert token is not None
        await auth.revoke_token(session, token.id)
        await session.commit()
    response = await client.get("/v1/me", headers=alice.headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


async def test_each_token_is_distinct_and_usable(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    async with create_session_factory(engine)() as session:
        user = await auth.require_user_by_email(session, alice.email)
        second = await auth.create_token(session, user, "laptop")
        await session.commit()
    assert second.secret != alice.token
    assert second.secret.startswith("rfl_")
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {second.secret}"})
    assert response.status_code == 200


async def test_last_used_is_recorded(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    await client.get("/v1/me", headers=alice.headers)
    async with create_session_factory(engine)() as session:
        token = await session.scalar(select(ApiToken).where(ApiToken.user_id == alice.user_id))
        assert token is not None
        assert token.last_used_at is not None


async def test_user_rules(engine: AsyncEngine) -> None:
    async with create_session_factory(engine)() as session:
        user = await auth.create_user(session, "  Carol@Example.COM ")
        assert user.email == "carol@example.com"
        with pytest.raises(Conflict):
            await auth.create_user(session, "carol@example.com")
        with pytest.raises(BadRequest):
            await auth.create_user(session, "not-an-email")
        with pytest.raises(NotFound):
            await auth.require_user_by_email(session, "nobody@example.com")
        with pytest.raises(NotFound):
            await auth.revoke_token(session, "tok_missing")
        with pytest.raises(BadRequest):
            await auth.create_token(session, user, "   ")


async def test_bootstrap_admin_only_on_an_empty_database(engine: AsyncEngine) -> None:
    factory = create_session_factory(engine)
    async with factory() as session:
        issued = await auth.bootstrap_admin(session, "admin@localhost")
        await session.commit()
    assert issued is not None
    async with factory() as session:
        assert await auth.bootstrap_admin(session, "admin@localhost") is None
        assert await auth.authenticate(session, issued.secret) is not None
        admin = await auth.require_user_by_email(session, "admin@localhost")
        assert admin.is_admin
