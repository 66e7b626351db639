"""The room's webhook through the API: the URL, the secret shown once, rotation, the test
event, the delivery log, and other people's rooms."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.app import create_app
from reflector.db.base import utcnow
from reflector.errors import InvalidInput
from reflector.room_webhooks.dispatcher import deliver_due
from reflector.room_webhooks.signing import verify
from reflector.room_webhooks.urls import require_https
from reflector.settings import Environment, Settings
from tests.conftest import Account, make_settings
from tests.hardening.conftest import PRODUCTION
from tests.room_webhooks.conftest import webhook_room
from tests.room_webhooks.receiver import Receiver
from tests.rooms.test_rooms_api import assert_error


async def get_room(client: httpx.AsyncClient, account: Account, ref: str) -> dict[str, Any]:
    response = await client.get(f"/v1/rooms/{ref}", headers=account.headers)
    assert response.status_code == 200, response.text
    room: dict[str, Any] = response.json()
    return room


async def patch(
    client: httpx.AsyncClient, account: Account, ref: str, **fields: Any
) -> httpx.Response:
    return await client.patch(f"/v1/rooms/{ref}", json=fields, headers=account.headers)


async def test_the_secret_is_shown_once(client: httpx.AsyncClient, alice: Account) -> None:
    created = await webhook_room(client, alice, "https://hooks.example.com/reflector")
    secret = created["webhook_secret"]
    assert created["webhook_url"] == "https://hooks.example.com/reflector"
    assert created["has_webhook_secret"] is True

    shown = await get_room(client, alice, "standup")
    assert "webhook_secret" not in shown
    assert (shown["webhook_url"], shown["has_webhook_secret"]) == (created["webhook_url"], True)
    listed = (await client.get("/v1/rooms", headers=alice.headers)).json()["items"]
    assert all("webhook_secret" not in room for room in listed)
    assert secret not in json.dumps(listed)

    # A new URL keeps the secret, and does not show it again.
    moved = await patch(client, alice, "standup", webhook_url="https://hooks.example.com/v2")
    assert moved.status_code == 200
    assert "webhook_secret" not in moved.json()
    assert moved.json()["webhook_url"] == "https://hooks.example.com/v2"
    other = await patch(client, alice, "standup", is_locked=True)
    assert "webhook_secret" not in other.json()

    # null removes the URL; the secret stays for when a URL comes back.
    removed = await patch(client, alice, "standup", webhook_url=None)
    assert (removed.json()["webhook_url"], removed.json()["has_webhook_secret"]) == (None, True)
    back = await patch(client, alice, "standup", webhook_url="https://hooks.example.com/v3")
    assert "webhook_secret" not in back.json()


async def test_a_room_gets_its_secret_with_its_first_url(
    client: httpx.AsyncClient, alice: Account
) -> None:
    plain = await client.post("/v1/rooms", json={"name": "plain"}, headers=alice.headers)
    assert plain.status_code == 201
    assert (plain.json()["webhook_url"], plain.json()["has_webhook_secret"]) == (None, False)
    assert "webhook_secret" not in plain.json()

    first = await patch(client, alice, "plain", webhook_url="http://127.0.0.1:9/hook")
    assert first.status_code == 200
    assert first.json()["webhook_secret"].startswith("whsec_")
    assert first.json()["has_webhook_secret"] is True


async def test_rotation_shows_a_new_secret_once_and_signs_with_it(
    client: httpx.AsyncClient, alice: Account, receiver: Receiver
) -> None:
    created = await webhook_room(client, alice, receiver.url)
    rotated = await client.post("/v1/rooms/standup/webhook/secret", headers=alice.headers)
    assert rotated.status_code == 200
    new = rotated.json()["webhook_secret"]
    assert new.startswith("whsec_")
    assert new != created["webhook_secret"]
    assert "webhook_secret" not in await get_room(client, alice, "standup")

    sent = await client.post("/v1/rooms/standup/webhook/test", headers=alice.headers)
    assert sent.status_code == 200
    request = receiver.requests[-1]
    header = request.headers["x-reflector-signature"]
    timestamp = int(header.split(",")[0].removeprefix("t="))
    assert verify(request.body, header, new, timestamp).ok
    assert not verify(request.body, header, created["webhook_secret"], timestamp).ok


async def test_the_test_event(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    alice: Account,
    receiver: Receiver,
    settings: Settings,
) -> None:
    room = await webhook_room(client, alice, receiver.url)
    ok = await client.post("/v1/rooms/standup/webhook/test", headers=alice.headers)
    assert ok.status_code == 200, ok.text
    answer = ok.json()
    assert (answer["succeeded"], answer["status_code"], answer["error"]) == (True, 200, None)
    request = receiver.requests[0]
    assert request.headers["x-reflector-event"] == "test"
    assert request.headers["x-reflector-delivery"] == answer["delivery_id"]
    body = json.loads(request.body)
    assert body["event"] == "test"
    assert body["data"]["room"] == {"id": room["id"], "name": "standup"}

    receiver.script(500)
    failed = await client.post("/v1/rooms/standup/webhook/test", headers=alice.headers)
    assert failed.status_code == 200
    assert failed.json()["succeeded"] is False
    assert failed.json()["status_code"] == 500
    assert failed.json()["error"] == "The receiver answered 500."

    # Both are in the log, newest first, and a failed test is not retried.
    async with httpx.AsyncClient() as http:
        assert await deliver_due(engine, http, settings, utcnow() + timedelta(days=30)) == 0
    log = await client.get("/v1/rooms/standup/webhook/deliveries", headers=alice.headers)
    assert log.status_code == 200
    items = log.json()["items"]
    assert [d["id"] for d in items] == [failed.json()["delivery_id"], answer["delivery_id"]]
    assert [d["status"] for d in items] == ["failed", "succeeded"]
    assert [[a["status_code"] for a in d["attempts"]] for d in items] == [[500], [200]]
    assert items[0]["attempts"][0]["outcome"] == "failed"
    assert items[1]["payload"]["event"] == "test"
    assert len(receiver.requests) == 2

    page = await client.get("/v1/rooms/standup/webhook/deliveries?limit=1", headers=alice.headers)
    assert [d["id"] for d in page.json()["items"]] == [items[0]["id"]]
    cursor = page.json()["next_cursor"]
    rest = await client.get(
        f"/v1/rooms/standup/webhook/deliveries?limit=1&cursor={cursor}", headers=alice.headers
    )
    assert [d["id"] for d in rest.json()["items"]] == [items[1]["id"]]
    assert rest.json()["next_cursor"] is None


async def test_a_test_needs_a_url(client: httpx.AsyncClient, alice: Account) -> None:
    await client.post("/v1/rooms", json={"name": "plain"}, headers=alice.headers)
    response = await client.post("/v1/rooms/plain/webhook/test", headers=alice.headers)
    assert_error(response, 409, "conflict", "no webhook_url", "PATCH /v1/rooms/plain")


async def test_another_users_room_is_missing(
    client: httpx.AsyncClient, alice: Account, bob: Account, receiver: Receiver
) -> None:
    room = await webhook_room(client, alice, receiver.url)
    for ref in ("standup", room["id"]):
        for method, path in [
            ("POST", f"/v1/rooms/{ref}/webhook/secret"),
            ("POST", f"/v1/rooms/{ref}/webhook/test"),
            ("GET", f"/v1/rooms/{ref}/webhook/deliveries"),
        ]:
            response = await client.request(method, path, headers=bob.headers)
            assert_error(response, 404, "not_found", "among your rooms")
        response = await patch(client, bob, ref, webhook_url="https://evil.example.com/")
        assert_error(response, 404, "not_found")
    assert receiver.requests == []
    assert (await get_room(client, alice, "standup"))["webhook_url"] == receiver.url
    unauthenticated = await client.post("/v1/rooms/standup/webhook/secret")
    assert unauthenticated.status_code == 401


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/hook", ["absolute http:// or https:// URL"]),
        ("/hooks/reflector", ["absolute http:// or https:// URL"]),
        ("https://", ["absolute http:// or https:// URL"]),
        ("https://example.com:99999/", ["absolute http:// or https:// URL"]),
        ("https://exa mple.com/", ["no spaces"]),
        ("https://example.com/#part", ["no #fragment"]),
        ("https://example.com/" + "a" * 2029, ["at most 2048 characters"]),
        (42, ["webhook_url"]),
    ],
)
async def test_bad_urls_are_refused(
    client: httpx.AsyncClient, alice: Account, url: object, words: list[str]
) -> None:
    body = {"name": "standup", "webhook_url": url}
    created = await client.post("/v1/rooms", json=body, headers=alice.headers)
    assert_error(created, 422, "validation_error", "webhook_url", *words)
    await client.post("/v1/rooms", json={"name": "standup"}, headers=alice.headers)
    patched = await patch(client, alice, "standup", webhook_url=url)
    assert_error(patched, 422, "validation_error", "webhook_url", *words)


async def test_the_longest_url_is_accepted(client: httpx.AsyncClient, alice: Account) -> None:
    url = "https://example.com/" + "a" * 2028
    assert len(url) == 2048
    room = await webhook_room(client, alice, url)
    assert room["webhook_url"] == url


def test_production_needs_https() -> None:
    production = Settings.model_construct(ENVIRONMENT=Environment.production)
    development = Settings.model_construct(ENVIRONMENT=Environment.development)
    require_https("https://example.com/hook", production)
    require_https(None, production)
    require_https("http://example.com/hook", development)
    with pytest.raises(InvalidInput, match="must start with https:// in production"):
        require_https("http://example.com/hook", production)


@pytest.fixture
async def production_client(
    engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(tmp_path, **PRODUCTION), engine=engine, background=False)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            yield http


async def test_production_refuses_plain_http(
    production_client: httpx.AsyncClient, alice: Account
) -> None:
    body = {"name": "standup", "webhook_url": "http://hooks.example.com/reflector"}
    refused = await production_client.post("/v1/rooms", json=body, headers=alice.headers)
    assert_error(refused, 422, "validation_error", "https://", "ENVIRONMENT=production")
    created = await production_client.post(
        "/v1/rooms", json={"name": "standup"}, headers=alice.headers
    )
    assert created.status_code == 201, created.text
    patched = await production_client.patch(
        "/v1/rooms/standup", json={"webhook_url": body["webhook_url"]}, headers=alice.headers
    )
    assert_error(patched, 422, "validation_error", "https://")
    secure = await production_client.patch(
        "/v1/rooms/standup",
        json={"webhook_url": "https://hooks.example.com/reflector"},
        headers=alice.headers,
    )
    assert secure.status_code == 200
    assert secure.json()["webhook_secret"].startswith("whsec_")
