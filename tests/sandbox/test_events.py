"""Meetings acted out: join/leave and session webhooks, signed, in order, retried."""

from __future__ import annotations

import re
import time
from typing import Any

from reflector.platforms.whereby.signature import verify
from tests.sandbox.conftest import WEBHOOK_SECRET, RunningSandbox, StartSandbox

CLIENT_FIELDS = {
    "meetingId",
    "roomName",
    "roomSessionId",
    "participantId",
    "displayName",
    "externalId",
    "metadata",
    "roleName",
    "numClients",
    "numClientsByRoleName",
    "isDialIn",
    "subdomain",
}
SESSION_FIELDS = {"meetingId", "roomName", "roomSessionId", "subdomain"}
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def summary(events: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    return [(e["type"], e["data"].get("displayName"), e["data"].get("numClients")) for e in events]


async def test_join_and_leave_send_signed_events_in_order(sandbox: RunningSandbox) -> None:
    receiver = sandbox.receiver
    assert receiver is not None
    meeting = await sandbox.create_meeting()
    meeting_id = meeting["meetingId"]
    ann = await sandbox.join(meeting_id, "Ann", roleName="host", externalId="u-1", metadata="m")
    bob = await sandbox.join(meeting_id, "Bob", isDialIn=True)
    await sandbox.leave(meeting_id, ann)
    await sandbox.leave(meeting_id, bob)
    await sandbox.idle()

    events = receiver.events
    assert summary(events) == [
        ("room.client.joined", "Ann", 1),
        ("room.client.joined", "Bob", 2),
        ("room.session.started", None, None),
        ("room.client.left", "Ann", 1),
        ("room.session.ended", None, None),
        ("room.client.left", "Bob", 0),
    ]
    for attempt in receiver.received:
        assert attempt.body == attempt.body.strip()
        assert b'": ' not in attempt.body  # compact JSON, as JSON.stringify writes it
        assert b'", "' not in attempt.body
        assert verify(attempt.body, attempt.signature, WEBHOOK_SECRET, time.time()).ok
    for event in events:
        assert set(event) == {"id", "apiVersion", "createdAt", "type", "data"}
        assert re.fullmatch(r"[0-9a-f]{64}", event["id"])
        assert event["apiVersion"] == "1.0"
        assert ISO_MS.fullmatch(event["createdAt"])
        fields = SESSION_FIELDS if event["type"].startswith("room.session") else CLIENT_FIELDS
        assert set(event["data"]) == fields
        assert event["data"]["meetingId"] == meeting_id
        assert event["data"]["roomName"] == meeting["roomName"]
        assert event["data"]["subdomain"] == "sandbox"
    assert len({e["id"] for e in events}) == len(events)

    ann_joined, bob_joined, started, ann_left, ended, bob_left = (e["data"] for e in events)
    assert ann_joined["roomSessionId"] is None  # alone: no session yet
    session_id = started["roomSessionId"]
    assert bob_joined["roomSessionId"] == session_id == ann_left["roomSessionId"]
    assert ended["roomSessionId"] == session_id
    assert bob_left["roomSessionId"] is None
    assert ann_joined["participantId"] == ann == ann_left["participantId"]
    assert (ann_joined["roleName"], ann_joined["externalId"], ann_joined["metadata"]) == (
        "host",
        "u-1",
        "m",
    )
    assert ann_joined["isDialIn"] is False
    assert bob_joined["isDialIn"] is True
    assert bob_joined["numClientsByRoleName"] == {"host": 1, "visitor": 1}
    assert ann_left["numClientsByRoleName"] == {"visitor": 1}
    assert bob_left["numClientsByRoleName"] == {}

    sessions = await sandbox.api.get(
        "/insights/room-sessions", params={"roomName": meeting["roomName"]}
    )
    assert sessions.status_code == 200
    body = sessions.json()
    assert body["cursor"] is None
    assert [s["roomSessionId"] for s in body["results"]] == [session_id]
    assert ISO_MS.fullmatch(body["results"][0]["startedAt"])
    assert ISO_MS.fullmatch(body["results"][0]["endedAt"])

    deliveries = await sandbox.deliveries()
    assert [d["type"] for d in deliveries] == [e["type"] for e in events]
    assert {(d["state"], d["statusCode"], d["attempts"]) for d in deliveries} == {
        ("delivered", 200, 1)
    }
    assert deliveries[0]["url"] == sandbox.config.webhook_url


async def test_running_session_has_no_end_yet_and_delay_is_honoured(
    start_sandbox: StartSandbox,
) -> None:
    sandbox = await start_sandbox(session_end_delay_seconds=0.5)
    receiver = sandbox.receiver
    assert receiver is not None
    meeting = await sandbox.create_meeting()
    meeting_id = meeting["meetingId"]
    ann = await sandbox.join(meeting_id, "Ann")
    bob = await sandbox.join(meeting_id, "Bob")
    await sandbox.leave(meeting_id, ann)
    # Back before the delay is over: the same session goes on.
    cat = await sandbox.join(meeting_id, "Cat")
    await sandbox.idle()
    running = await sandbox.api.get(
        "/insights/room-sessions", params={"roomName": meeting["roomName"].lstrip("/")}
    )
    [session] = running.json()["results"]
    assert session["endedAt"] is None

    await sandbox.leave(meeting_id, cat)
    left_at = time.monotonic()
    events = await receiver.wait_until(lambda es: "room.session.ended" in [e["type"] for e in es])
    assert time.monotonic() - left_at >= 0.45
    assert [e["type"] for e in events].count("room.session.started") == 1
    assert events[-1]["data"]["roomSessionId"] == session["roomSessionId"]
    await sandbox.leave(meeting_id, bob)

    ended = await sandbox.api.get(
        "/insights/room-sessions", params={"roomName": meeting["roomName"]}
    )
    assert ended.json()["results"][0]["endedAt"] is not None
    missing = await sandbox.api.get("/insights/room-sessions")
    assert missing.status_code == 400


async def test_delete_ends_the_meeting_at_once(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox(session_end_delay_seconds=60)
    receiver = sandbox.receiver
    assert receiver is not None
    meeting = await sandbox.create_meeting(recording={"type": "cloud", "startTrigger": "automatic"})
    meeting_id = meeting["meetingId"]
    await sandbox.join(meeting_id, "Ann")
    await sandbox.join(meeting_id, "Bob")
    assert (await sandbox.api.delete(f"/meetings/{meeting_id}")).status_code == 204
    await sandbox.idle()
    assert summary(receiver.events) == [
        ("room.client.joined", "Ann", 1),
        ("room.client.joined", "Recorder", 2),
        ("room.client.joined", "Bob", 3),
        ("room.session.started", None, None),
        ("room.client.left", "Ann", 2),
        ("room.session.ended", None, None),
        ("room.client.left", "Bob", 1),
        ("room.client.left", "Recorder", 0),
        ("recording.finished", None, None),
    ]
    assert (await sandbox.http.get(f"/_sandbox/meetings/{meeting_id}")).status_code == 404
    gone = await sandbox.http.post(
        f"/_sandbox/meetings/{meeting_id}/participants", json={"displayName": "Late"}
    )
    assert gone.status_code == 404


async def test_failed_deliveries_are_retried_in_order(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox(receiver="fail_first")
    receiver = sandbox.receiver
    assert receiver is not None
    meeting = await sandbox.create_meeting()
    for name in ("Ann", "Bob", "Cat"):
        await sandbox.join(meeting["meetingId"], name)
    await sandbox.idle()

    assert [r.answered for r in receiver.received] == [500, 200] * 4
    assert summary(receiver.events) == [
        ("room.client.joined", "Ann", 1),
        ("room.client.joined", "Bob", 2),
        ("room.session.started", None, None),
        ("room.client.joined", "Cat", 3),
    ]
    for attempt in receiver.received:
        assert verify(attempt.body, attempt.signature, WEBHOOK_SECRET, time.time()).ok
    deliveries = await sandbox.deliveries()
    assert [(d["state"], d["attempts"], d["statusCode"]) for d in deliveries] == [
        ("delivered", 2, 200)
    ] * 4
    assert deliveries[0]["attemptLog"] == [
        {"statusCode": 500, "error": None},
        {"statusCode": 200, "error": None},
    ]


async def test_delivery_gives_up_after_two_retries(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox(receiver="always_fail")
    receiver = sandbox.receiver
    assert receiver is not None
    meeting = await sandbox.create_meeting()
    await sandbox.join(meeting["meetingId"], "Ann")
    await sandbox.idle()
    assert len(receiver.received) == 3
    [delivery] = await sandbox.deliveries()
    assert (delivery["state"], delivery["attempts"], delivery["statusCode"]) == ("failed", 3, 500)


async def test_slow_answers_are_retried(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox(receiver="slow_first", webhook_timeout_seconds=0.3)
    receiver = sandbox.receiver
    assert receiver is not None
    receiver.slow_seconds = 1.0
    meeting = await sandbox.create_meeting()
    await sandbox.join(meeting["meetingId"], "Ann")
    await sandbox.idle()
    [delivery] = await sandbox.deliveries()
    assert (delivery["state"], delivery["attempts"]) == ("delivered", 2)
    assert delivery["attemptLog"][0]["statusCode"] is None
    assert "no answer" in delivery["attemptLog"][0]["error"]
    assert len(receiver.received) == 2


async def test_no_webhooks_without_url_and_secret(start_sandbox: StartSandbox) -> None:
    sandbox = await start_sandbox(receiver=None)
    meeting = await sandbox.create_meeting()
    await sandbox.join(meeting["meetingId"], "Ann")
    await sandbox.idle()
    assert await sandbox.deliveries() == []
    state = await sandbox.state(meeting["meetingId"])
    assert [p["displayName"] for p in state["participants"]] == ["Ann"]


async def test_control_api_rejects_what_cannot_happen(sandbox: RunningSandbox) -> None:
    meeting = await sandbox.create_meeting(roomMode="normal")
    base = f"/_sandbox/meetings/{meeting['meetingId']}"
    cases = [
        ("POST", "/_sandbox/meetings/1/participants", {"displayName": "A"}, 404),
        ("POST", f"{base}/participants", {"displayName": ""}, 400),
        ("POST", f"{base}/participants", {"displayName": "A", "roleName": "recorder"}, 400),
        ("POST", f"{base}/participants", {"displayName": "A", "roleName": "king"}, 400),
        ("DELETE", f"{base}/participants/nobody", None, 404),
        ("POST", f"{base}/recording/start", None, 409),  # not a cloud recording meeting
        ("POST", f"{base}/recording/stop", None, 409),
        ("PUT", f"{base}/audio", {"path": "/no/such/file.m4a"}, 400),
        ("PUT", "/_sandbox/rate-limit", {"count": -1}, 400),
    ]
    for method, path, body, status in cases:
        response = await sandbox.http.request(method, path, json=body)
        assert response.status_code == status, (method, path, body, response.text)
        assert "error" in response.json()
    for n in range(4):
        await sandbox.join(meeting["meetingId"], f"P{n}")
    full = await sandbox.http.post(f"{base}/participants", json={"displayName": "Fifth"})
    assert full.status_code == 409
