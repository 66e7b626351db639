from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.app import create_app
from reflector.db.engine import create_engine
from tests.conftest import Account, Database, make_settings


async def test_health_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == "ok"


async def test_health_is_503_when_the_database_is_down(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: nothing listens there, so the connection is refused.
    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    app = create_app(make_settings(tmp_path), engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/health")
    await engine.dispose()
    assert response.status_code == 503
    assert response.json()["error"] == "service_unavailable"
    assert "DATABASE_URL" in response.json()["detail"]


async def test_unknown_route_and_method_use_the_error_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing")
    assert missing.status_code == 404
    assert set(missing.json()) == {"error", "detail"}
    assert missing.json()["error"] == "not_found"
    wrong = await client.put("/health")
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"


async def test_unexpected_errors_are_500_with_the_request_id(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    app = create_app(make_settings(tmp_path), engine=engine)

    async def explode() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/explode", explode)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/explode", headers={"X-Request-ID": "req-42"})
    await engine.dispose()
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "req-42" in response.json()["detail"]
    assert "boom" not in response.text
    # Sent by Starlette's outermost error middleware, yet hardened like every other answer.
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    given = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = await client.get("/health", headers={"X-Request-ID": "bad id\twith junk"})
    assert generated.headers["x-request-id"] != "bad id\twith junk"
    assert len(generated.headers["x-request-id"]) == 32


async def test_openapi_docs_are_served(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/rooms" in spec["paths"]
    assert "/v1/rooms/{ref}" in spec["paths"]


async def test_a_dropped_database_connection_is_503_then_recovers(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account, database: Database
) -> None:
    if database.backend != "postgresql":
        pytest.skip("SQLite has no server to drop connections")
    assert (await client.get("/v1/me", headers=alice.headers)).status_code == 200
    killer = create_engine(database.url)
    async with killer.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND datname = current_database() "
                "AND application_name = '' AND backend_type = 'client backend'"
            )
        )
    await killer.dispose()
    statuses = [(await client.get("/v1/me", headers=alice.headers)).status_code for _ in range(3)]
    assert statuses[-1] == 200
    assert statuses[0] == 503, statuses
