"""Events from the code paths that produce them, to a real receiver: transcript.completed from
the recording job (scripted models, the real pipeline runner), meeting.ended from the meeting
lifecycle."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db.base import utcnow
from reflector.db.engine import create_session_factory
from reflector.meetings.lifecycle import close_finished_meetings
from reflector.meetings.models import Meeting
from reflector.platforms.base import VideoPlatform
from reflector.platforms.whereby.platform import WherebyPlatform
from reflector.recordings.processing import process_recording
from reflector.recordings.storage import LocalStorage
from reflector.room_webhooks.dispatcher import deliver_due
from reflector.room_webhooks.models import WebhookDelivery
from reflector.room_webhooks.signing import verify
from reflector.settings import Settings
from tests.conftest import Account
from tests.factories import make_meeting
from tests.fakes.pipeline import scripted_backends
from tests.fakes.platform import FakePlatform
from tests.meetings.test_lifecycle import set_meeting
from tests.room_webhooks.receiver import Receiver
from tests.transcripts.test_recording_transcripts import presence, stored_recording

# Ada alone while the first voice speaks, Ben alone for the second: named speakers.
MOVES = [("joined", "Ada", -5.0), ("joined", "Ben", 12.4), ("left", "Ada", 12.5)]


async def set_webhook(client: httpx.AsyncClient, account: Account, url: str) -> str:
    """Point the `standup` room (tests.factories) at `url`; its new secret."""
    response = await client.patch(
        "/v1/rooms/standup", json={"webhook_url": url}, headers=account.headers
    )
    assert response.status_code == 200, response.text
    secret: str = response.json()["webhook_secret"]
    return secret


async def deliveries(client: httpx.AsyncClient, account: Account) -> list[dict[str, Any]]:
    response = await client.get("/v1/rooms/standup/webhook/deliveries", headers=account.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@pytest.mark.parametrize(
    ("answers", "status", "codes"),
    [([500, 500, 200], "succeeded", [500, 500, 200]), ([400], "failed", [400])],
)
async def test_transcript_completed_reaches_the_receiver(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    alice: Account,
    receiver: Receiver,
    settings: Settings,
    tmp_path: Path,
    answers: list[int],
    status: str,
    codes: list[int],
) -> None:
    meeting = await make_meeting(engine, alice)
    secret = await set_webhook(client, alice, receiver.url)
    await presence(client, meeting, MOVES)
    recording_id = await stored_recording(engine, meeting, tmp_path)
    backends, _, _ = scripted_backends()
    outcome = await process_recording(
        recording_id,
        engine=engine,
        recordings=LocalStorage(tmp_path / "bucket"),
        derived=LocalStorage(tmp_path / "derived"),
        backends=backends,
        workdir=tmp_path,
    )
    assert outcome == "completed"
    [pending] = await deliveries(client, alice)
    assert (pending["event"], pending["status"], pending["attempts"]) == (
        "transcript.completed",
        "pending",
        [],
    )

    # The dispatcher's passes, time moved on by hand: 30 s, then 60 s of back-off.
    receiver.script(*answers)
    start = utcnow()
    async with httpx.AsyncClient() as http:
        for offset in (0, 30, 90, 3600):
            await deliver_due(engine, http, settings, start + timedelta(seconds=offset))
    assert [r.headers["x-reflector-delivery"] for r in receiver.requests] == [pending["id"]] * len(
        codes
    )
    for request in receiver.requests:
        header = request.headers["x-reflector-signature"]
        sent_at = int(header.split(",")[0].removeprefix("t="))
        assert start.timestamp() - 1 <= sent_at <= start.timestamp() + 91
        assert verify(request.body, header, secret, sent_at, tolerance=0).ok

    [delivery] = await deliveries(client, alice)
    assert delivery["status"] == status
    assert [a["status_code"] for a in delivery["attempts"]] == codes
    assert [a["outcome"] for a in delivery["attempts"]] == (
        ["retrying", "retrying", "succeeded"] if status == "succeeded" else ["failed"]
    )
    assert delivery["last_status_code"] == codes[-1]

    body = json.loads(receiver.requests[0].body)
    assert (body["id"], body["event"]) == (pending["id"], "transcript.completed")
    data = body["data"]
    transcript = data["transcript"]
    shown = (await client.get(f"/v1/transcripts/{transcript['id']}", headers=alice.headers)).json()
    assert shown["recording_id"] == recording_id
    for field in ("title", "short_summary", "long_summary", "language", "duration"):
        assert transcript[field] == shown[field], field
    assert transcript["title"]
    assert transcript["participants"] == ["Ada", "Ben"]
    assert transcript["topics"] == [
        {k: t[k] for k in ("title", "summary", "start", "end")} for t in shown["topics"]
    ]
    assert transcript["topics"]
    assert len(transcript["action_items"]) == len(shown["action_items"])
    assert data["room"] == {"id": meeting.room_id, "name": "standup"}
    assert data["meeting"]["id"] == meeting.id
    assert data["recording"] == {"id": recording_id}

    base = str(settings.BASE_URL).rstrip("/")
    links = data["links"]
    assert links["api"] == f"{base}/v1/transcripts/{transcript['id']}"
    assert links["web"] == f"{base}/transcripts/{transcript['id']}"
    assert set(links["exports"]) == {"json", "vtt", "srt", "md", "txt"}
    for link in [links["api"], *links["exports"].values()]:
        got = await client.get(link.removeprefix(base), headers=alice.headers)
        assert got.status_code == 200, link


async def test_meeting_ended_from_the_lifecycle(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    alice: Account,
    bob: Account,
    receiver: Receiver,
    settings: Settings,
) -> None:
    meeting = await make_meeting(engine, alice)
    secret = await set_webhook(client, alice, receiver.url)
    await presence(client, meeting, MOVES)  # Ada, Ben and a recorder bot
    # Bob's room has no webhook URL: its meeting ends without a delivery.
    other = await client.post("/v1/rooms", json={"name": "quiet"}, headers=bob.headers)
    async with create_session_factory(engine)() as session:
        quiet = Meeting(
            room_id=other.json()["id"],
            platform="whereby",
            platform_meeting_id="1",
            platform_room_name="/quiet-1",
            room_url="https://whereby.test/quiet-1",
            host_room_url=None,
            start_date=utcnow() - timedelta(hours=2),
            end_date=utcnow() - timedelta(hours=1),
            room_settings={},
        )
        session.add(quiet)
        await session.commit()
    now = utcnow()
    await set_meeting(engine, meeting.id, end_date=now - timedelta(minutes=1), num_clients=0)
    platforms: dict[str, VideoPlatform] = {
        "whereby": FakePlatform(WherebyPlatform(settings, httpx.AsyncClient()))
    }
    async with create_session_factory(engine)() as session:
        closed = await close_finished_meetings(session, platforms, now)
        await session.commit()
    assert sorted(closed) == sorted([(meeting.id, "expired"), (quiet.id, "expired")])
    async with create_session_factory(engine)() as session:
        count = await session.scalar(select(func.count()).select_from(WebhookDelivery))
        assert count == 1

    async with httpx.AsyncClient() as http:
        assert await deliver_due(engine, http, settings, now) == 1
    [request] = receiver.requests
    assert request.headers["x-reflector-event"] == "meeting.ended"
    header = request.headers["x-reflector-signature"]
    assert verify(request.body, header, secret, now.timestamp(), tolerance=1).ok
    body = json.loads(request.body)
    assert body["event"] == "meeting.ended"
    ended = body["data"]["meeting"]
    assert ended["id"] == meeting.id
    assert ended["end_reason"] == "expired"
    assert ended["participants_count"] == 2  # the recorder is not a participant
    assert ended["ended_at"] is not None
    assert ended["start_date"] is not None
    assert body["data"]["room"] == {"id": meeting.room_id, "name": "standup"}
    [delivery] = await deliveries(client, alice)
    assert (delivery["status"], delivery["event"]) == ("succeeded", "meeting.ended")
