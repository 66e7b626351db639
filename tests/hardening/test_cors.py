"""CORS: off unless CORS_ALLOWED_ORIGINS names origins; then exactly those, without
credentials, for the API's methods and headers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reflector.settings import ConfigError, Settings, load_settings
from tests.conftest import WEBHOOK_SECRET, Account, Database, make_settings

ALLOWED = "https://app.example.com"
PREFLIGHT = {
    "Access-Control-Request-Method": "PATCH",
    "Access-Control-Request-Headers": "authorization,content-type",
}


@pytest.fixture
def database(sqlite_database: Database) -> Database:
    return sqlite_database


@pytest.fixture(params=["unset", "configured"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    extra = (
        {"CORS_ALLOWED_ORIGINS": f" {ALLOWED} , http://localhost:3000"}
        if request.param == "configured"
        else {}
    )
    return make_settings(tmp_path, WHEREBY_WEBHOOK_SECRET=WEBHOOK_SECRET, **extra)


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


async def test_only_configured_origins_get_cors(
    client: httpx.AsyncClient, settings: Settings, alice: Account
) -> None:
    configured = settings.CORS_ALLOWED_ORIGINS is not None
    for origin in (ALLOWED, "https://evil.example.net", "http://app.example.com"):
        preflight = await client.options("/v1/rooms", headers={"Origin": origin, **PREFLIGHT})
        simple = await client.get("/v1/rooms", headers={"Origin": origin, **alice.headers})
        assert simple.status_code == 200
        if configured and origin == ALLOWED:
            assert preflight.status_code == 200
            allowed = cors_headers(preflight)
            assert allowed["access-control-allow-origin"] == ALLOWED
            assert set(allowed["access-control-allow-methods"].split(", ")) == {
                "GET",
                "POST",
                "PATCH",
                "DELETE",
            }
            assert set(allowed["access-control-allow-headers"].lower().split(", ")) >= {
                "authorization",
                "content-type",
            }
            assert "access-control-allow-credentials" not in allowed
            assert cors_headers(simple)["access-control-allow-origin"] == ALLOWED
        else:
            assert cors_headers(preflight) == {}, (origin, preflight.headers)
            assert cors_headers(simple) == {}, (origin, simple.headers)
            if configured:
                assert preflight.status_code == 400
                assert preflight.json()["error"] == "cors_refused"
                assert "CORS_ALLOWED_ORIGINS" in preflight.json()["detail"]
            else:
                assert preflight.status_code == 405


async def test_other_methods_and_headers_are_not_allowed(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/v1/rooms",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-custom",
        },
    )
    assert preflight.status_code in (400, 405)
    assert cors_headers(preflight) == {}


@pytest.mark.parametrize(
    "value",
    ["*", "app.example.com", "https://app.example.com/", "https://app.example.com/path", "ftp://x"],
)
def test_malformed_origins_are_refused_naming_the_setting(tmp_path: Path, value: str) -> None:
    env = tmp_path / ".env"
    env.write_text(f"CORS_ALLOWED_ORIGINS=https://ok.example.com,{value}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=env)
    message = str(caught.value)
    assert message.startswith("Configuration error: CORS_ALLOWED_ORIGINS: ")
    assert f"{value!r} is not an origin; write each as scheme://host[:port]" in message
    assert "\n" not in message
