from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Account

ROOM = {
    "name": "my-whereby-room",
    "platform": "whereby",
    "recording_type": "cloud",
    "recording_trigger": "automatic-2nd-participant",
    "is_locked": False,
    "room_mode": "normal",
}


def assert_error(response: httpx.Response, status: int, code: str, *words: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == code
    for word in words:
        assert word in body["detail"], body["detail"]
    detail: str = body["detail"]
    return detail


async def create(client: httpx.AsyncClient, account: Account, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/rooms", json={**ROOM, **fields}, headers=account.headers)
    assert response.status_code == 201, response.text
    room: dict[str, Any] = response.json()
    return room


async def test_create_echoes_fields(client: httpx.AsyncClient, alice: Account) -> None:
    room = await create(client, alice)
    for key, value in ROOM.items():
        assert room[key] == value
    assert room["id"].startswith("room_")
    assert room["owner_id"] == alice.user_id


async def test_create_applies_defaults(client: httpx.AsyncClient, alice: Account) -> None:
    response = await client.post("/v1/rooms", json={"name": "standup"}, headers=alice.headers)
    assert response.status_code == 201
    room = response.json()
    assert room["platform"] == "whereby"
    assert room["recording_type"] == "cloud"
    assert room["recording_trigger"] == "automatic-2nd-participant"
    assert room["is_locked"] is False
    assert room["room_mode"] == "normal"


async def test_duplicate_name_is_409(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    await create(client, alice)
    again = await client.post("/v1/rooms", json=ROOM, headers=alice.headers)
    assert_error(again, 409, "conflict", "my-whereby-room", "already exists")
    # Names are global (they become the platform's room-name prefix), so another user too.
    other = await client.post("/v1/rooms", json=ROOM, headers=bob.headers)
    assert_error(other, 409, "conflict")


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("room_mode", "huge", ["room_mode", "'normal'", "'group'", "huge"]),
        ("recording_type", "tape", ["recording_type", "'none'", "'local'", "'cloud'"]),
        ("recording_trigger", "later", ["recording_trigger", "'automatic-2nd-participant'"]),
        ("platform", "zoom", ["platform", "zoom", "whereby"]),
        ("is_locked", "yes", ["is_locked", "boolean"]),
        ("is_locked", 1, ["is_locked", "boolean"]),
        ("room_mode", 3, ["room_mode"]),
        ("name", "My-Room", ["name", "lower-case", "My-Room"]),
        ("name", "", ["name", "1-39"]),
        ("name", "a" * 40, ["name", "1-39"]),
        ("name", "with space", ["name"]),
        ("name", "under_score", ["name"]),
        ("name", 42, ["name", "string"]),
        ("name", None, ["name"]),
    ],
)
async def test_bad_field_is_422_naming_it(
    client: httpx.AsyncClient, alice: Account, field: str, value: Any, words: list[str]
) -> None:
    response = await client.post("/v1/rooms", json={**ROOM, field: value}, headers=alice.headers)
    assert_error(response, 422, "validation_error", *words)
    listing = await client.get("/v1/rooms", headers=alice.headers)
    assert listing.json()["items"] == []


async def test_name_of_39_characters_is_accepted(client: httpx.AsyncClient, alice: Account) -> None:
    room = await create(client, alice, name="a" * 39)
    assert room["name"] == "a" * 39


async def test_missing_name_is_422(client: httpx.AsyncClient, alice: Account) -> None:
    body = {key: value for key, value in ROOM.items() if key != "name"}
    response = await client.post("/v1/rooms", json=body, headers=alice.headers)
    assert_error(response, 422, "validation_error", "name is required")


async def test_unknown_fields_are_422(client: httpx.AsyncClient, alice: Account) -> None:
    response = await client.post(
        "/v1/rooms", json={**ROOM, "colour": "red", "size": 3}, headers=alice.headers
    )
    assert_error(response, 422, "validation_error", "'colour'", "'size'", "accepted fields")


@pytest.mark.parametrize("body", [b'{"name": "x"', b"{,}", b"\xff\xfe"])
async def test_malformed_json_is_400(
    client: httpx.AsyncClient, alice: Account, body: bytes
) -> None:
    headers = {**alice.headers, "Content-Type": "application/json"}
    response = await client.post("/v1/rooms", content=body, headers=headers)
    assert_error(response, 400, "invalid_json", "not valid JSON")


@pytest.mark.parametrize("body", [b"[]", b"null", b'"room"', b"42"])
async def test_non_object_body_is_422(
    client: httpx.AsyncClient, alice: Account, body: bytes
) -> None:
    headers = {**alice.headers, "Content-Type": "application/json"}
    response = await client.post("/v1/rooms", content=body, headers=headers)
    assert_error(response, 422, "validation_error", "JSON object")


async def test_empty_body_is_400(client: httpx.AsyncClient, alice: Account) -> None:
    headers = {**alice.headers, "Content-Type": "application/json"}
    response = await client.post("/v1/rooms", content=b"", headers=headers)
    assert_error(response, 400, "missing_body")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_non_json_content_type_is_415(
    client: httpx.AsyncClient, alice: Account, content_type: str
) -> None:
    headers = {**alice.headers, "Content-Type": content_type}
    response = await client.post("/v1/rooms", content=b'{"name": "abc"}', headers=headers)
    assert_error(response, 415, "unsupported_media_type", "application/json")


async def test_body_over_64_kib_is_413(client: httpx.AsyncClient, alice: Account) -> None:
    huge = {**ROOM, "name": "x" * (70 * 1024)}
    response = await client.post("/v1/rooms", json=huge, headers=alice.headers)
    assert_error(response, 413, "payload_too_large", "65536")


async def test_streamed_body_over_limit_is_413(client: httpx.AsyncClient, alice: Account) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b" " * 8192

    headers = {**alice.headers, "Content-Type": "application/json"}
    response = await client.post("/v1/rooms", content=chunks(), headers=headers)
    assert_error(response, 413, "payload_too_large")


async def test_get_by_id_and_by_name(client: httpx.AsyncClient, alice: Account) -> None:
    room = await create(client, alice)
    by_id = await client.get(f"/v1/rooms/{room['id']}", headers=alice.headers)
    by_name = await client.get("/v1/rooms/my-whereby-room", headers=alice.headers)
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json() == room


async def test_unknown_room_is_404(client: httpx.AsyncClient, alice: Account) -> None:
    for ref in ["nothing-here", "room_0123456789abcdef01234567"]:
        response = await client.get(f"/v1/rooms/{ref}", headers=alice.headers)
        assert_error(response, 404, "not_found", ref)


async def test_list_paginates_oldest_first(client: httpx.AsyncClient, alice: Account) -> None:
    names = [f"room-{index:02d}" for index in range(7)]
    for name in names:
        await create(client, alice, name=name)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/v1/rooms", params=params, headers=alice.headers)
        assert response.status_code == 200
        page = response.json()
        seen += [room["name"] for room in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == names
    assert pages == 3


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"limit": 0}, 422, ["limit"]),
        ({"limit": 101}, 422, ["limit"]),
        ({"limit": "ten"}, 422, ["limit"]),
        ({"cursor": "not-a-cursor"}, 400, ["cursor"]),
        ({"cursor": "WyJub3QtYS1kYXRlIiwgIngiXQ"}, 400, ["cursor"]),
    ],
)
async def test_bad_list_parameters(
    client: httpx.AsyncClient,
    alice: Account,
    params: dict[str, Any],
    status: int,
    words: list[str],
) -> None:
    response = await client.get("/v1/rooms", params=params, headers=alice.headers)
    code = "validation_error" if status == 422 else "bad_request"
    assert_error(response, status, code, *words)


async def test_patch_changes_only_given_fields(client: httpx.AsyncClient, alice: Account) -> None:
    room = await create(client, alice)
    response = await client.patch(
        f"/v1/rooms/{room['name']}",
        json={"is_locked": True, "room_mode": "group"},
        headers=alice.headers,
    )
    assert response.status_code == 200
    patched = response.json()
    assert patched["is_locked"] is True
    assert patched["room_mode"] == "group"
    assert patched["recording_type"] == room["recording_type"]
    assert patched["updated_at"] >= room["updated_at"]
    again = await client.get(f"/v1/rooms/{room['id']}", headers=alice.headers)
    assert again.json() == patched


async def test_patch_rename_and_conflict(client: httpx.AsyncClient, alice: Account) -> None:
    first = await create(client, alice, name="first")
    await create(client, alice, name="second")
    renamed = await client.patch(
        f"/v1/rooms/{first['id']}", json={"name": "renamed"}, headers=alice.headers
    )
    assert renamed.json()["name"] == "renamed"
    clash = await client.patch("/v1/rooms/renamed", json={"name": "second"}, headers=alice.headers)
    assert_error(clash, 409, "conflict", "second")
    same = await client.patch("/v1/rooms/renamed", json={"name": "renamed"}, headers=alice.headers)
    assert same.status_code == 200


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"is_locked": None}, ["is_locked", "null"]),
        ({"room_mode": "huge"}, ["room_mode", "'group'"]),
        ({"owner_id": "usr_x"}, ["'owner_id'", "accepted fields"]),
        ({"name": "Bad Name"}, ["name"]),
    ],
)
async def test_bad_patch_is_422_and_keeps_the_room(
    client: httpx.AsyncClient, alice: Account, body: dict[str, Any], words: list[str]
) -> None:
    room = await create(client, alice)
    response = await client.patch(f"/v1/rooms/{room['id']}", json=body, headers=alice.headers)
    assert_error(response, 422, "validation_error", *words)
    after = await client.get(f"/v1/rooms/{room['id']}", headers=alice.headers)
    assert after.json() == room


async def test_delete(client: httpx.AsyncClient, alice: Account) -> None:
    room = await create(client, alice)
    response = await client.delete(f"/v1/rooms/{room['id']}", headers=alice.headers)
    assert response.status_code == 204
    assert response.content == b""
    gone = await client.get(f"/v1/rooms/{room['id']}", headers=alice.headers)
    assert_error(gone, 404, "not_found")
    again = await client.delete(f"/v1/rooms/{room['id']}", headers=alice.headers)
    assert_error(again, 404, "not_found")
    # The name is free again.
    await create(client, alice)


async def test_another_users_room_is_404_everywhere(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    room = await create(client, alice)
    for ref in [room["id"], room["name"]]:
        get = await client.get(f"/v1/rooms/{ref}", headers=bob.headers)
        assert_error(get, 404, "not_found")
        patch = await client.patch(
            f"/v1/rooms/{ref}", json={"is_locked": True}, headers=bob.headers
        )
        assert_error(patch, 404, "not_found")
        delete = await client.delete(f"/v1/rooms/{ref}", headers=bob.headers)
        assert_error(delete, 404, "not_found")
    listing = await client.get("/v1/rooms", headers=bob.headers)
    assert listing.json() == {"items": [], "next_cursor": None}
    mine = await client.get(f"/v1/rooms/{room['id']}", headers=alice.headers)
    assert mine.json() == room


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/rooms"),
        ("POST", "/v1/rooms"),
        ("GET", "/v1/rooms/my-whereby-room"),
        ("PATCH", "/v1/rooms/my-whereby-room"),
        ("DELETE", "/v1/rooms/my-whereby-room"),
    ],
)
async def test_rooms_need_a_token(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path, json=ROOM)
    assert_error(response, 401, "unauthorized", "reflector tokens create")
    assert response.headers["www-authenticate"].startswith("Bearer")
