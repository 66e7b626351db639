"""Security headers on every answer; a CSP that allows nothing on JSON, the pages' own CSP
left alone, /docs still working; HSTS in production only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.app import create_app
from reflector.settings import Settings
from tests.conftest import Account, Database, make_settings
from tests.hardening.conftest import PRODUCTION

API_CSP = "default-src 'none'; frame-ancestors 'none'"
ALWAYS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
    "cross-origin-opener-policy": "same-origin",
}


@pytest.fixture
def database(sqlite_database: Database) -> Database:
    return sqlite_database


def assert_hardened(response: httpx.Response) -> None:
    for name, value in ALWAYS.items():
        assert response.headers.get_list(name) == [value], (name, response.headers)
    assert "strict-transport-security" not in response.headers


async def test_json_answers(client: httpx.AsyncClient, alice: Account) -> None:
    answers = [
        await client.get("/health"),
        await client.get("/v1/rooms", headers=alice.headers),
        await client.get("/v1/rooms"),  # 401
        await client.get("/v1/nothing-here"),  # 404
        await client.post("/v1/rooms", content=b"{", headers=alice.headers),  # 400/422
        await client.post(
            "/v1/rooms",
            content=b"x" * 70_000,
            headers={**alice.headers, "Content-Type": "application/json"},
        ),  # 413 from the body-size middleware
        await client.post("/v1/whereby", content=b"{}"),  # a webhook without a signature
        await client.get("/openapi.json"),
    ]
    assert {r.status_code for r in answers} >= {200, 401, 404, 413}
    for response in answers:
        assert response.headers["content-type"].startswith("application/json"), response
        assert_hardened(response)
        assert response.headers.get_list("content-security-policy") == [API_CSP]


async def test_pages_keep_their_own_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/signin")
    assert page.status_code == 200
    [csp] = page.headers.get_list("content-security-policy")
    assert "script-src 'self'" in csp
    assert csp != API_CSP
    # The page's own Referrer-Policy stays, alone.
    assert page.headers.get_list("referrer-policy") == ["same-origin"]
    assert page.headers.get_list("x-frame-options") == ["DENY"]


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_docs_still_load_their_scripts(client: httpx.AsyncClient, path: str) -> None:
    page = await client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    # Swagger UI and ReDoc load scripts and styles from a CDN: no policy may forbid them.
    assert "content-security-policy" not in page.headers
    assert page.headers["x-content-type-options"] == "nosniff"


@pytest.fixture
async def production_client(
    engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings: Settings = make_settings(tmp_path, **PRODUCTION)
    app = create_app(settings, engine=engine, background=False)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            yield http


async def test_hsts_in_production_only(
    production_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    for path in ("/health", "/signin", "/v1/rooms"):
        response = await production_client.get(path)
        assert response.headers.get_list("strict-transport-security") == [
            "max-age=31536000; includeSubDomains"
        ]
        assert response.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in (await client.get(path)).headers
