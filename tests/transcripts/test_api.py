"""The /v1/transcripts API: who sees what (owner, `room` and `public` share modes, everyone else
404), the listing, exports, edits (title, share mode, speaker renames and merges) and delete.

Transcripts are made directly in the database with a small hand-written document, so each
test controls exactly what is there; one test runs a real recording through the job."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db.base import new_id, utcnow
from reflector.db.engine import create_session_factory
from reflector.pipeline.types import (
    ActionItem,
    Segment,
    Speaker,
    Topic,
    TranscriptDocument,
    Word,
)
from reflector.recordings.models import Recording
from reflector.recordings.processing import process_recording
from reflector.recordings.storage import LocalStorage, Storage
from reflector.settings import Settings
from reflector.transcripts.models import Transcript
from tests.conftest import Account
from tests.factories import make_meeting, make_room
from tests.fakes.pipeline import scripted_backends
from tests.transcripts.test_recording_transcripts import recording_key, stored_recording

NOT_FOUND_DETAIL = (
    "No transcript '{id}' among yours or those shared with you; check the id "
    "(GET /v1/transcripts lists yours)."
)


def derived_of(settings: Settings) -> LocalStorage:
    """The derived storage the app uses for these settings (no DERIVED_STORAGE_BUCKET)."""
    return LocalStorage(settings.DATA_DIR / "derived")


def document(title: str = "Planning the launch") -> TranscriptDocument:
    """Three voices: 0 speaks, 1 answers, 0 again, then 2."""

    def word(text: str, start: float, end: float, speaker: int) -> Word:
        return Word(text=text, start=start, end=end, probability=0.9, speaker=speaker)

    words = [
        word("Hello", 0.0, 0.4, 0),
        word("there.", 0.5, 1.0, 0),
        word("Hi.", 1.2, 1.5, 1),
        word("Welcome", 2.0, 2.4, 0),
        word("all.", 2.5, 3.0, 0),
        word("Thanks.", 3.2, 3.6, 2),
    ]
    return TranscriptDocument(
        duration=4.0,
        language="en",
        title=title,
        short_summary="A short talk.",
        long_summary="## Summary\n\nA short talk.",
        action_items=[ActionItem(text="Send the notes", owner="Speaker 2", start=1.2)],
        topics=[Topic(title="Greetings", summary="Hello.", start=0.0, end=3.6)],
        speakers=[Speaker(id=i, name=f"Speaker {i + 1}") for i in range(3)],
        segments=[
            Segment(speaker=0, start=0.0, end=1.0, text="Hello there."),
            Segment(speaker=1, start=1.2, end=1.5, text="Hi."),
            Segment(speaker=0, start=2.0, end=3.0, text="Welcome all."),
            Segment(speaker=2, start=3.2, end=3.6, text="Thanks."),
        ],
        words=words,
    )


async def make_transcript(
    engine: AsyncEngine,
    owner: Account,
    *,
    status: str = "ended",
    share_mode: str = "private",
    room_id: str | None = None,
    created_at: datetime | None = None,
    doc: TranscriptDocument | None = None,
    source: str = "upload",
    filename: str | None = "talk.m4a",
) -> str:
    doc = doc or document()
    transcript_id = new_id("trn")
    ended = status == "ended"
    async with create_session_factory(engine)() as session:
        session.add(
            Transcript(
                id=transcript_id,
                owner_id=owner.user_id,
                room_id=room_id,
                source=source,
                share_mode=share_mode,
                filename=filename,
                status=status,
                step="exports" if ended else "transcribe",
                steps={},
                storage_prefix=f"transcripts/{transcript_id}",
                title=doc.title if ended else None,
                short_summary=doc.short_summary if ended else None,
                language=doc.language if ended else None,
                duration=doc.duration if ended else None,
                document=doc.model_dump_json() if ended else None,
                error="The file has no audio track." if status == "error" else None,
                created_at=created_at or utcnow(),
                ended_at=utcnow() if status != "processing" else None,
            )
        )
        await session.commit()
    return transcript_id


async def store_audio(
    engine: AsyncEngine,
    derived: Storage,
    transcript_id: str,
    data: bytes,
    peaks: list[float] | None = None,
) -> str:
    """Store playback audio and the audio step's output for the transcript, as the pipeline
    would; returns the playback key."""
    prefix = f"transcripts/{transcript_id}/"
    playback = prefix + "playback.m4a"
    step = prefix + "steps/audio.json"
    await derived.write(playback, data, "audio/mp4")
    stored = {
        "step": "audio",
        "params": {},
        "value": {
            "duration": 4.0,
            "peaks": peaks if peaks is not None else [0.0, 0.5, 1.0, 0.25],
            "wav": prefix + "audio.wav",
            "playback": playback,
        },
    }
    await derived.write(step, json.dumps(stored).encode(), "application/json")
    async with create_session_factory(engine)() as session:
        row = await session.get(Transcript, transcript_id)
        assert row is not None
        row.steps = {"audio": step}
        row.playback_key = playback if row.status == "ended" else None
        await session.commit()
    return playback


def error_of(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    body: dict[str, str] = response.json()
    assert set(body) == {"error", "detail"}
    return body


async def reads(
    client: httpx.AsyncClient, transcript_id: str, headers: dict[str, str]
) -> dict[str, int]:
    """Status of each read route for this caller."""
    base = f"/v1/transcripts/{transcript_id}"
    return {
        "get": (await client.get(base, headers=headers)).status_code,
        "export": (await client.get(f"{base}/export?format=vtt", headers=headers)).status_code,
        "audio": (await client.get(f"{base}/audio", headers=headers)).status_code,
        "waveform": (await client.get(f"{base}/waveform", headers=headers)).status_code,
    }


async def writes(
    client: httpx.AsyncClient, transcript_id: str, headers: dict[str, str]
) -> dict[str, httpx.Response]:
    base = f"/v1/transcripts/{transcript_id}"
    return {
        "patch": await client.patch(base, json={"title": "Mine now"}, headers=headers),
        "delete": await client.delete(base, headers=headers),
    }


# --- who sees what ------------------------------------------------------------------------


async def test_someone_elses_transcript_is_404_on_every_route(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    alice: Account,
    bob: Account,
) -> None:
    transcript_id = await make_transcript(engine, alice)
    await store_audio(engine, derived_of(settings), transcript_id, b"audio bytes")
    assert await reads(client, transcript_id, alice.headers) == dict.fromkeys(
        ("get", "export", "audio", "waveform"), 200
    )

    expected = {"error": "not_found", "detail": NOT_FOUND_DETAIL.format(id=transcript_id)}
    unknown = {"error": "not_found", "detail": NOT_FOUND_DETAIL.format(id="trn_nope")}
    base = f"/v1/transcripts/{transcript_id}"
    for path in (base, f"{base}/export?format=vtt", f"{base}/audio", f"{base}/waveform"):
        for headers in (bob.headers, {}):  # another user, and nobody
            assert error_of(await client.get(path, headers=headers), 404) == expected
        missing = path.replace(transcript_id, "trn_nope")
        assert error_of(await client.get(missing, headers=alice.headers), 404) == unknown
    for response in (await writes(client, transcript_id, bob.headers)).values():
        assert error_of(response, 404) == expected

    listing = await client.get("/v1/transcripts", headers=bob.headers)
    assert listing.json() == {"items": [], "next_cursor": None}
    # Nothing was changed by bob's attempts.
    mine = (await client.get(base, headers=alice.headers)).json()
    assert mine["title"] == "Planning the launch"


async def test_room_share_mode_lets_signed_in_users_read_but_not_change(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    alice: Account,
    bob: Account,
) -> None:
    transcript_id = await make_transcript(engine, alice)
    await store_audio(engine, derived_of(settings), transcript_id, b"audio bytes")
    shared = await client.patch(
        f"/v1/transcripts/{transcript_id}", json={"share_mode": "room"}, headers=alice.headers
    )
    assert shared.status_code == 200, shared.text
    assert shared.json()["share_mode"] == "room"

    assert await reads(client, transcript_id, bob.headers) == dict.fromkeys(
        ("get", "export", "audio", "waveform"), 200
    )
    assert set((await reads(client, transcript_id, {})).values()) == {404}
    for response in (await writes(client, transcript_id, bob.headers)).values():
        assert error_of(response, 404)["error"] == "not_found"
    # Shared with bob is not listed as bob's.
    listing = await client.get("/v1/transcripts", headers=bob.headers)
    assert listing.json()["items"] == []


async def test_public_share_mode_lets_anyone_read_without_a_token(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    alice: Account,
    bob: Account,
) -> None:
    transcript_id = await make_transcript(engine, alice, share_mode="public")
    await store_audio(engine, derived_of(settings), transcript_id, b"audio bytes")
    assert await reads(client, transcript_id, {}) == dict.fromkeys(
        ("get", "export", "audio", "waveform"), 200
    )
    body = (await client.get(f"/v1/transcripts/{transcript_id}")).json()
    assert (body["share_mode"], body["title"]) == ("public", "Planning the launch")
    assert await reads(client, transcript_id, bob.headers) == dict.fromkeys(
        ("get", "export", "audio", "waveform"), 200
    )

    anonymous = await writes(client, transcript_id, {})
    for response in anonymous.values():
        assert error_of(response, 401)["error"] == "unauthorized"
    for response in (await writes(client, transcript_id, bob.headers)).values():
        assert error_of(response, 404)["error"] == "not_found"
    # A token that is sent is checked even where none is needed.
    bad = await client.get(
        f"/v1/transcripts/{transcript_id}", headers={"Authorization": "Bearer rfl_wrong"}
    )
    assert error_of(bad, 401)["error"] == "unauthorized"

    # Back to private: gone for everyone else.
    private = await client.patch(
        f"/v1/transcripts/{transcript_id}", json={"share_mode": "private"}, headers=alice.headers
    )
    assert private.status_code == 200
    assert set((await reads(client, transcript_id, {})).values()) == {404}
    assert set((await reads(client, transcript_id, bob.headers)).values()) == {404}


# --- reading ------------------------------------------------------------------------------


async def test_get_tells_share_mode_source_and_filename(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    transcript_id = await make_transcript(engine, alice, filename="Kick-off call.m4a")
    body = (await client.get(f"/v1/transcripts/{transcript_id}", headers=alice.headers)).json()
    assert body["id"] == transcript_id
    assert (body["share_mode"], body["source"], body["filename"]) == (
        "private",
        "upload",
        "Kick-off call.m4a",
    )
    assert body["status"] == "ended"
    assert [s["name"] for s in body["speakers"]] == ["Speaker 1", "Speaker 2", "Speaker 3"]
    assert len(body["words"]) == 6
    assert body["long_summary"].startswith("## Summary")


async def test_listing_filters_and_pages_newest_first(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account, bob: Account
) -> None:
    standup = (await make_room(engine, alice.user_id, "standup")).id
    await make_room(engine, bob.user_id, "bobs-room")
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    made: list[str] = []
    for day in range(5):
        made.append(
            await make_transcript(
                engine,
                alice,
                created_at=start + timedelta(days=day),
                room_id=standup if day % 2 == 0 else None,
                status="processing" if day == 4 else "ended",
            )
        )
    await make_transcript(engine, bob, created_at=start)
    newest_first = list(reversed(made))

    async def ids(query: str) -> list[str]:
        response = await client.get(f"/v1/transcripts{query}", headers=alice.headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids("") == newest_first
    item = (await client.get("/v1/transcripts", headers=alice.headers)).json()["items"][1]
    assert item["title"] == "Planning the launch"
    assert {"words", "segments", "speakers", "document"}.isdisjoint(item)
    assert {"share_mode", "source", "filename", "status", "created_at"} <= set(item)

    assert await ids("?room=standup") == [made[4], made[2], made[0]]
    assert await ids(f"?room={standup}") == [made[4], made[2], made[0]]
    assert await ids("?status=processing") == [made[4]]
    assert await ids("?status=ended&room=standup") == [made[2], made[0]]
    assert await ids("?since=2026-11-02T09:00:00Z&until=2026-11-04T09:00:00Z") == [
        made[2],
        made[1],
    ]
    # A time without a zone is UTC.
    assert await ids("?since=2026-11-04T09:00:00") == [made[4], made[3]]

    pages: list[str] = []
    cursor = ""
    while True:
        response = await client.get(f"/v1/transcripts?limit=2{cursor}", headers=alice.headers)
        page = response.json()
        pages += [item["id"] for item in page["items"]]
        assert len(page["items"]) <= 2
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert pages == newest_first

    bad_status = error_of(
        await client.get("/v1/transcripts?status=done", headers=alice.headers), 422
    )
    assert "status" in bad_status["detail"]
    assert "'processing', 'ended' or 'error'" in bad_status["detail"]
    bad_room = error_of(
        await client.get("/v1/transcripts?room=bobs-room", headers=alice.headers), 422
    )
    assert bad_room["detail"] == (
        "Invalid request: room: no room 'bobs-room' among yours; give the id or the name of "
        "one of your rooms (GET /v1/rooms lists them)."
    )
    backwards = error_of(
        await client.get(
            "/v1/transcripts?since=2026-11-04T00:00:00Z&until=2026-11-02T00:00:00Z",
            headers=alice.headers,
        ),
        422,
    )
    assert "must be before until" in backwards["detail"]
    assert error_of(
        await client.get("/v1/transcripts?cursor=nonsense", headers=alice.headers), 400
    )["detail"].startswith("The cursor is not one this API issued")
    assert (await client.get("/v1/transcripts")).status_code == 401


# --- exports ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "media_type", "start"),
    [
        ("json", "application/json", "{"),
        ("vtt", "text/vtt; charset=utf-8", "WEBVTT"),
        ("srt", "application/x-subrip; charset=utf-8", "1\n00:00:00,000 --> "),
        ("md", "text/markdown; charset=utf-8", "# Planning the launch"),
        ("txt", "text/plain; charset=utf-8", "Planning the launch"),
    ],
)
async def test_exports_have_their_media_type_and_a_file_name(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    alice: Account,
    fmt: str,
    media_type: str,
    start: str,
) -> None:
    transcript_id = await make_transcript(engine, alice)
    response = await client.get(
        f"/v1/transcripts/{transcript_id}/export?format={fmt}", headers=alice.headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    assert response.headers["content-disposition"] == (
        f'attachment; filename="planning-the-launch.{fmt}"'
    )
    assert response.text.startswith(start)
    if fmt == "json":
        assert TranscriptDocument.model_validate_json(response.content) == document()


async def test_export_file_names_fall_back_to_ascii_and_the_id(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    accented = await make_transcript(engine, alice, doc=document("Réunion d'équipe: 2027"))
    response = await client.get(
        f"/v1/transcripts/{accented}/export?format=md", headers=alice.headers
    )
    disposition = response.headers["content-disposition"]
    plain, rich = disposition.split("; filename*=UTF-8''")
    assert plain == 'attachment; filename="reunion-d-equipe-2027.md"'
    assert unquote(rich) == "réunion-d-équipe-2027.md"
    assert "# Réunion d'équipe: 2027" in response.text

    nothing_ascii = await make_transcript(engine, alice, doc=document("会議"))
    response = await client.get(
        f"/v1/transcripts/{nothing_ascii}/export?format=txt", headers=alice.headers
    )
    plain, rich = response.headers["content-disposition"].split("; filename*=UTF-8''")
    assert plain == f'attachment; filename="{nothing_ascii}.txt"'
    assert unquote(rich) == "会議.txt"
    # The default format is JSON.
    default = await client.get(f"/v1/transcripts/{nothing_ascii}/export", headers=alice.headers)
    assert default.headers["content-type"] == "application/json"


async def test_export_refuses_unknown_formats_and_unfinished_transcripts(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    ended = await make_transcript(engine, alice)
    unknown = error_of(
        await client.get(f"/v1/transcripts/{ended}/export?format=docx", headers=alice.headers),
        422,
    )
    assert unknown["detail"] == (
        "Invalid request: query parameter format: unknown format 'docx'; choose one of "
        "json, vtt, srt, md, txt."
    )
    processing = await make_transcript(engine, alice, status="processing")
    busy = error_of(
        await client.get(f"/v1/transcripts/{processing}/export?format=vtt", headers=alice.headers),
        409,
    )
    assert busy["detail"] == (
        f"Transcript '{processing}' is still being processed (step transcribe); export it "
        "once its status is 'ended'."
    )
    failed = await make_transcript(engine, alice, status="error")
    broken = error_of(
        await client.get(f"/v1/transcripts/{failed}/export?format=vtt", headers=alice.headers),
        409,
    )
    assert "processing failed (The file has no audio track.)" in broken["detail"]


# --- edits --------------------------------------------------------------------------------


async def patch(
    client: httpx.AsyncClient, transcript_id: str, account: Account, body: Any
) -> httpx.Response:
    return await client.patch(
        f"/v1/transcripts/{transcript_id}", json=body, headers=account.headers
    )


async def test_a_renamed_speaker_shows_in_the_exports(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    transcript_id = await make_transcript(engine, alice)
    response = await patch(
        client,
        transcript_id,
        alice,
        {
            "title": "  Launch   plan ",
            "speakers": [{"id": 0, "name": "Ada"}, {"id": 1, "name": "Ben"}],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["title"] == "Launch plan"
    assert body["speakers"] == [
        {"id": 0, "name": "Ada", "named_from": "renamed by the owner"},
        {"id": 1, "name": "Ben", "named_from": "renamed by the owner"},
        {"id": 2, "name": "Speaker 3", "named_from": None},
    ]
    # The action item of "Speaker 2" follows the rename.
    assert body["action_items"][0]["owner"] == "Ben"

    vtt = await client.get(
        f"/v1/transcripts/{transcript_id}/export?format=vtt", headers=alice.headers
    )
    assert "<v Ada>Hello there." in vtt.text
    assert "<v Ben>Hi." in vtt.text
    assert "<v Speaker 3>Thanks." in vtt.text
    assert vtt.headers["content-disposition"] == 'attachment; filename="launch-plan.vtt"'
    md = await client.get(
        f"/v1/transcripts/{transcript_id}/export?format=md", headers=alice.headers
    )
    assert md.text.startswith("# Launch plan")
    # Stored: a fresh GET and the listing agree.
    again = (await client.get(f"/v1/transcripts/{transcript_id}", headers=alice.headers)).json()
    assert again["speakers"] == body["speakers"]
    listing = (await client.get("/v1/transcripts", headers=alice.headers)).json()
    assert listing["items"][0]["title"] == "Launch plan"


async def test_merging_speakers_moves_words_and_joins_segments(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    transcript_id = await make_transcript(engine, alice)
    response = await patch(
        client,
        transcript_id,
        alice,
        {"merge": [{"from": 1, "into": 0}], "speakers": [{"id": 0, "name": "Ada"}]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [s["id"] for s in body["speakers"]] == [0, 2]
    assert body["speakers"][0]["name"] == "Ada"
    assert [w["speaker"] for w in body["words"]] == [0, 0, 0, 0, 0, 2]
    assert [(s["speaker"], s["start"], s["end"], s["text"]) for s in body["segments"]] == [
        (0, 0.0, 3.0, "Hello there. Hi. Welcome all."),
        (2, 3.2, 3.6, "Thanks."),
    ]
    assert body["action_items"][0]["owner"] == "Ada"
    vtt = await client.get(
        f"/v1/transcripts/{transcript_id}/export?format=vtt", headers=alice.headers
    )
    assert "<v Speaker 2>" not in vtt.text
    assert "<v Ada>Hello there. Hi. Welcome all." in vtt.text


async def test_merges_chain_and_a_consistent_rename_of_a_merged_speaker_is_fine(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    transcript_id = await make_transcript(engine, alice)
    response = await patch(
        client,
        transcript_id,
        alice,
        {
            "merge": [{"from": 1, "into": 2}, {"from": 2, "into": 0}],
            "speakers": [{"id": 0, "name": "Ada"}, {"id": 2, "name": "Ada"}],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["speakers"] == [{"id": 0, "name": "Ada", "named_from": "renamed by the owner"}]
    assert {w["speaker"] for w in body["words"]} == {0}
    # Every neighbour became speaker 0 after a speaker change: one segment.
    assert [s["text"] for s in body["segments"]] == ["Hello there. Hi. Welcome all. Thanks."]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"speakers": [{"id": 7, "name": "Ada"}]},
            "Invalid request: speakers.0.id: there is no speaker 7 in this transcript; its "
            "speakers are 0, 1, 2.",
        ),
        (
            {"merge": [{"from": 1, "into": 1}]},
            "Invalid request: merge.0: speaker 1 cannot be merged into itself; name two "
            "different speakers.",
        ),
        (
            {"merge": [{"from": 0, "into": 9}]},
            "Invalid request: merge.0.into: there is no speaker 9 in this transcript; its "
            "speakers are 0, 1, 2.",
        ),
        (
            {"merge": [{"from": 1, "into": 0}, {"from": 1, "into": 2}]},
            "Invalid request: merge.1: speaker 1 is merged into both 0 and 2; choose one.",
        ),
        (
            {"merge": [{"from": 1, "into": 0}, {"from": 0, "into": 1}]},
            "Invalid request: merge: the merges form a cycle (0 -> 1); every chain of merges "
            "must end in a speaker that is kept.",
        ),
        (
            {"merge": [{"from": 1, "into": 0}], "speakers": [{"id": 1, "name": "Ben"}]},
            "Invalid request: speakers.0: speaker 1 is merged into speaker 0, so it cannot also "
            "be renamed to 'Ben'; rename speaker 0 instead.",
        ),
        (
            {"speakers": [{"id": 0, "name": "Ada"}, {"id": 0, "name": "Eve"}]},
            "Invalid request: speakers.1: speaker 0 is given two names ('Ada' and 'Eve'); "
            "give one.",
        ),
    ],
)
async def test_edits_that_cannot_be_applied_say_why(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    alice: Account,
    body: dict[str, Any],
    detail: str,
) -> None:
    transcript_id = await make_transcript(engine, alice)
    assert error_of(await patch(client, transcript_id, alice, body), 422)["detail"] == detail
    unchanged = (await client.get(f"/v1/transcripts/{transcript_id}", headers=alice.headers)).json()
    assert [s["name"] for s in unchanged["speakers"]] == ["Speaker 1", "Speaker 2", "Speaker 3"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"title": ""}, "title: must not be empty or only spaces"),
        ({"title": "x" * 201}, "title: must be at most 200 characters (got 201)"),
        ({"share_mode": "everyone"}, "share_mode: Input should be 'private', 'room' or 'public'"),
        ({"speakers": [{"id": 0, "name": " "}]}, "speakers.0.name: must not be empty"),
        (
            {"speakers": [{"id": "0", "name": "Ada"}]},
            "speakers.0.id: Input should be a valid integer",
        ),
        ({"merge": [{"from": 1}]}, "merge.0.into is required"),
        ({"title": None}, "title may not be null"),
        ({"owner": "bob"}, "unknown field 'owner'"),
    ],
)
async def test_malformed_edits_are_422_with_a_sentence(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    alice: Account,
    body: dict[str, Any],
    fragment: str,
) -> None:
    transcript_id = await make_transcript(engine, alice)
    detail = error_of(await patch(client, transcript_id, alice, body), 422)["detail"]
    assert fragment in detail, detail


async def test_editing_before_the_end_is_409_but_sharing_is_fine(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    transcript_id = await make_transcript(engine, alice, status="processing")
    for body in ({"title": "Early"}, {"speakers": [{"id": 0, "name": "Ada"}]}):
        conflict = error_of(await patch(client, transcript_id, alice, body), 409)
        assert conflict["detail"] == (
            f"Transcript '{transcript_id}' is still being processed; edit it once its status "
            "is 'ended'. Its share_mode can be changed meanwhile."
        )
    shared = await patch(client, transcript_id, alice, {"share_mode": "public"})
    assert shared.status_code == 200, shared.text
    assert shared.json()["share_mode"] == "public"
    assert (await patch(client, transcript_id, alice, {})).status_code == 200


# --- delete -------------------------------------------------------------------------------


async def test_delete_removes_derived_files_and_keeps_the_recording(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    alice: Account,
    bob: Account,
    tmp_path: Path,
) -> None:
    meeting = await make_meeting(engine, alice)
    recording_id = await stored_recording(engine, meeting, tmp_path)
    bucket = LocalStorage(tmp_path / "bucket")
    derived = derived_of(settings)
    backends, _, _ = scripted_backends()
    status = await process_recording(
        recording_id,
        engine=engine,
        recordings=bucket,
        derived=derived,
        backends=backends,
        workdir=tmp_path,
    )
    assert status == "completed"
    async with create_session_factory(engine)() as session:
        row = await session.scalar(
            select(Transcript).where(Transcript.recording_id == recording_id)
        )
        assert row is not None
        transcript_id, prefix = row.id, row.storage_prefix
    stored = [key async for key in derived.list_keys(f"{prefix}/")]
    assert {f"{prefix}/playback.m4a", f"{prefix}/audio.wav", f"{prefix}/steps/audio.json"} <= set(
        stored
    )
    other = await make_transcript(engine, alice)
    await store_audio(engine, derived, other, b"other audio")

    assert (
        await client.delete(f"/v1/transcripts/{transcript_id}", headers=bob.headers)
    ).status_code == 404
    deleted = await client.delete(f"/v1/transcripts/{transcript_id}", headers=alice.headers)
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""

    assert [key async for key in derived.list_keys(f"{prefix}/")] == []
    assert not (derived.root / prefix).exists()
    assert await derived.size(f"transcripts/{other}/playback.m4a") == len(b"other audio")
    # The raw recording stays in its bucket; its row forgets the transcript.
    assert await bucket.size(recording_key(meeting)) is not None
    async with create_session_factory(engine)() as session:
        assert await session.get(Transcript, transcript_id) is None
        recording = await session.get(Recording, recording_id)
        assert recording is not None
        assert recording.transcript_id is None
    gone = await client.get(f"/v1/transcripts/{transcript_id}", headers=alice.headers)
    assert error_of(gone, 404)["detail"] == NOT_FOUND_DETAIL.format(id=transcript_id)
    again = await client.delete(f"/v1/transcripts/{transcript_id}", headers=alice.headers)
    assert again.status_code == 404
