"""The Whereby REST API as the sandbox serves it: shapes, validation, auth, paging, rate limit."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from tests.sandbox.conftest import API_KEY, RunningSandbox, in_hours

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


async def test_create_meeting_answers_as_whereby(sandbox: RunningSandbox) -> None:
    response = await sandbox.api.post(
        "/meetings",
        json={
            "endDate": "2099-01-02T03:04:05+02:00",
            "roomNamePrefix": "standup-",
            "fields": ["hostRoomUrl", "viewerRoomUrl"],
            "roomMode": "group",
            "isLocked": True,
            "somethingNew": {"ignored": True},
            "recording": {"type": "cloud", "startTrigger": "none", "destination": {}},
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "meetingId",
        "roomName",
        "roomUrl",
        "startDate",
        "endDate",
        "hostRoomUrl",
        "viewerRoomUrl",
    }
    assert re.fullmatch(r"\d{8}", body["meetingId"])
    assert re.fullmatch(rf"/standup-{UUID}", body["roomName"])
    assert body["roomUrl"] == sandbox.config.public_url + body["roomName"]
    assert ISO_MS.fullmatch(body["startDate"])
    assert body["endDate"] == "2099-01-02T01:04:05.000Z"
    assert re.fullmatch(re.escape(body["roomUrl"]) + r"\?roomKey=[\w-]+", body["hostRoomUrl"])
    assert body["viewerRoomUrl"].startswith(body["roomUrl"] + "?roomKey=")
    assert body["viewerRoomUrl"] != body["hostRoomUrl"]

    plain = await sandbox.create_meeting(roomNamePattern="human-short")
    assert set(plain) == {"meetingId", "roomName", "roomUrl", "startDate", "endDate"}
    assert re.fullmatch(r"/[a-z]+-[a-z]+-\d{4}", plain["roomName"])
    assert plain["meetingId"] != body["meetingId"]


async def test_create_meeting_rejects_bad_input_with_400(sandbox: RunningSandbox) -> None:
    future = in_hours(1)
    bad: list[tuple[Any, str]] = [
        ({}, "endDate"),
        ({"endDate": "tomorrow"}, "endDate"),
        ({"endDate": 12}, "endDate"),
        ({"endDate": "2001-01-01T00:00:00Z"}, "past"),
        ({"endDate": future, "roomNamePrefix": "Standup"}, "roomNamePrefix"),
        ({"endDate": future, "roomNamePrefix": "a" * 40}, "roomNamePrefix"),
        ({"endDate": future, "roomNamePrefix": "a_b"}, "roomNamePrefix"),
        ({"endDate": future, "roomMode": "huge"}, "roomMode"),
        ({"endDate": future, "roomNamePattern": "words"}, "roomNamePattern"),
        ({"endDate": future, "fields": ["secret"]}, "fields"),
        ({"endDate": future, "fields": "hostRoomUrl"}, "fields"),
        ({"endDate": future, "isLocked": "yes"}, "isLocked"),
        ({"endDate": future, "recording": "cloud"}, "recording"),
        ({"endDate": future, "recording": {"type": "tape"}}, "type"),
        ({"endDate": future, "recording": {"type": "cloud", "startTrigger": "x"}}, "startTrigger"),
        ([future], "object"),
    ]
    for body, word in bad:
        response = await sandbox.api.post("/meetings", json=body)
        assert response.status_code == 400, body
        assert set(response.json()) == {"error"}, body
        assert word in response.json()["error"], (body, response.json())

    broken = await sandbox.api.post(
        "/meetings", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    assert "error" in broken.json()

    # The recording block is lenient: an unknown destination detail does not fail the call.
    lenient = await sandbox.api.post(
        "/meetings",
        json={"endDate": future, "recording": {"type": "cloud", "destination": {"x": 1}}},
    )
    assert lenient.status_code == 201


async def test_every_call_needs_the_api_key(sandbox: RunningSandbox) -> None:
    meeting = await sandbox.create_meeting()
    async with httpx.AsyncClient(base_url=sandbox.url + "/v1", trust_env=False) as anonymous:
        calls = [
            anonymous.post("/meetings", json={"endDate": in_hours(1)}),
            anonymous.get(f"/meetings/{meeting['meetingId']}"),
            anonymous.get("/meetings", headers={"Authorization": "Bearer wrong"}),
            anonymous.delete(
                f"/meetings/{meeting['meetingId']}", headers={"Authorization": API_KEY}
            ),
        ]
        for call in calls:
            response = await call
            assert response.status_code == 401
            assert set(response.json()) == {"error"}
    assert (await sandbox.api.get(f"/meetings/{meeting['meetingId']}")).status_code == 200


async def test_get_list_and_delete_meetings(sandbox: RunningSandbox) -> None:
    created = [await sandbox.create_meeting(roomNamePrefix=f"m{i}-") for i in range(5)]
    first = created[0]

    got = await sandbox.api.get(f"/meetings/{first['meetingId']}")
    assert got.status_code == 200
    assert got.json() == first
    with_host = await sandbox.api.get(
        f"/meetings/{first['meetingId']}", params={"fields": "hostRoomUrl"}
    )
    assert set(with_host.json()) == {*first, "hostRoomUrl"}
    assert (await sandbox.api.get("/meetings/12345")).status_code == 404

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await sandbox.api.get("/meetings", params=params)).json()
        assert set(page) == {"results", "cursor"}
        seen += [m["meetingId"] for m in page["results"]]
        pages += 1
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == [m["meetingId"] for m in created]
    assert pages == 3
    assert len((await sandbox.api.get("/meetings")).json()["results"]) == 5
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"cursor": "!!"}):
        response = await sandbox.api.get("/meetings", params=params)
        assert response.status_code == 400, params
        assert "error" in response.json()

    deleted = await sandbox.api.delete(f"/meetings/{first['meetingId']}")
    assert deleted.status_code == 204
    assert (await sandbox.api.delete(f"/meetings/{first['meetingId']}")).status_code == 204
    assert (await sandbox.api.get(f"/meetings/{first['meetingId']}")).status_code == 404
    assert (await sandbox.api.delete("/meetings/99999999")).status_code == 404
    assert len((await sandbox.api.get("/meetings")).json()["results"]) == 4


async def test_rate_limit_answers_429_then_lets_requests_through(
    sandbox: RunningSandbox,
) -> None:
    switch = await sandbox.http.put("/_sandbox/rate-limit", json={"count": 2, "retryAfter": 7})
    assert switch.status_code == 200
    for _ in range(2):
        limited = await sandbox.api.get("/meetings")
        assert limited.status_code == 429
        assert limited.json() == {
            "error": "Rate limit active for throttle key: organization:1",
            "data": {"msLeft": 7000},
        }
        assert limited.headers["Retry-After"] == "7"
        assert limited.headers["X-RateLimit-Limit"].isdigit()
        assert limited.headers["X-RateLimit-Remaining"] == "0"
        assert int(limited.headers["X-RateLimit-Reset"]) >= int(time.time()) + 6
    assert (await sandbox.api.get("/meetings")).status_code == 200

    await sandbox.http.put("/_sandbox/rate-limit", json={"count": 5, "retry_after": 1})
    await sandbox.http.put("/_sandbox/rate-limit", json={"count": 0})
    assert (await sandbox.api.get("/meetings")).status_code == 200


async def test_request_log_shows_what_was_sent(sandbox: RunningSandbox) -> None:
    meeting = await sandbox.create_meeting(roomNamePrefix="log-", extra="kept")
    await sandbox.api.get(f"/meetings/{meeting['meetingId']}", params={"fields": "hostRoomUrl"})
    await sandbox.http.get("/v1/meetings")  # no key

    log = (await sandbox.http.get("/_sandbox/requests")).json()["requests"]
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("POST", "/v1/meetings", 201),
        ("GET", f"/v1/meetings/{meeting['meetingId']}", 200),
        ("GET", "/v1/meetings", 401),
    ]
    assert log[0]["body"]["roomNamePrefix"] == "log-"
    assert log[0]["body"]["extra"] == "kept"
    assert log[0]["contentType"] == "application/json"
    assert log[1]["query"] == {"fields": "hostRoomUrl"}
    assert ISO_MS.fullmatch(log[0]["receivedAt"])

    assert (await sandbox.http.delete("/_sandbox/requests")).status_code == 204
    assert (await sandbox.http.get("/_sandbox/requests")).json()["requests"] == []


async def test_room_theme_logo_and_tokens(sandbox: RunningSandbox) -> None:
    meeting = await sandbox.create_meeting()
    room = meeting["roomName"].lstrip("/")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    logo = await sandbox.api.put(
        f"/rooms/{room}/theme/logo", files={"image": ("logo.png", png, "image/png")}
    )
    assert logo.status_code == 204
    served = await sandbox.http.get(f"/_sandbox/rooms/{room}/logo")
    assert served.content == png
    assert served.headers["content-type"] == "image/png"

    colors = {"primary": "#112233", "secondary": "#445566", "focus": "#778899"}
    tokens = await sandbox.api.put(
        f"/rooms/{room}/theme/tokens", json={"tokens": {"colors": colors}}
    )
    assert tokens.status_code == 204
    theme = (await sandbox.state(meeting["meetingId"]))["theme"]
    assert theme == {
        "logo": True,
        "logoContentType": "image/png",
        "tokens": {"colors": colors},
    }

    missing = await sandbox.api.put(f"/rooms/{room}/theme/logo", files={"other": ("a", b"x")})
    assert missing.status_code == 400
    assert (await sandbox.api.put(f"/rooms/{room}/theme/tokens", json={"x": 1})).status_code == 400
    unknown = await sandbox.api.put("/rooms/nope/theme/tokens", json={"tokens": {}})
    assert unknown.status_code == 404


async def test_reset_forgets_everything(sandbox: RunningSandbox) -> None:
    meeting = await sandbox.create_meeting()
    await sandbox.join(meeting["meetingId"], "Ann")
    await sandbox.http.put("/_sandbox/rate-limit", json={"count": 3})
    assert (await sandbox.http.post("/_sandbox/reset")).status_code == 204
    assert (await sandbox.http.get("/_sandbox/requests")).json()["requests"] == []
    assert (await sandbox.http.get("/_sandbox/webhooks")).json()["deliveries"] == []
    assert (await sandbox.api.get("/meetings")).json()["results"] == []
