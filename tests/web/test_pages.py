"""The web pages without a browser: sign-in and its cookie, CSRF on forms and on the
cookie-authenticated API, redirects to /signin, the room form's messages, page rendering."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from reflector.auth import service as auth
from reflector.auth.models import ApiToken
from reflector.db.base import utcnow
from reflector.db.engine import create_session_factory
from reflector.meetings.models import Meeting, Participant
from reflector.pipeline.types import (
    ActionItem,
    Segment,
    Speaker,
    Topic,
    TranscriptDocument,
    Word,
)
from reflector.platforms.base import VideoPlatform
from reflector.platforms.whereby.platform import WherebyPlatform
from reflector.settings import Settings
from reflector.transcripts.models import Transcript
from reflector.web import session as web_session
from tests.conftest import Account, make_settings
from tests.factories import make_meeting
from tests.fakes.platform import FakePlatform


@pytest.fixture
def platforms(settings: Settings) -> dict[str, VideoPlatform]:
    return {"whereby": FakePlatform(WherebyPlatform(settings, httpx.AsyncClient()))}


_HIDDEN = re.compile(r'name="csrf_token" value="([^"]*)"')
_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def _hidden_csrf(page: str) -> str:
    match = _HIDDEN.search(page)
    assert match, page
    return match.group(1)


def _meta_csrf(page: str) -> str:
    match = _META.search(page)
    assert match, page
    assert match.group(1), page
    return match.group(1)


def _text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


async def sign_in(client: httpx.AsyncClient, token: str, next_path: str = "/") -> httpx.Response:
    form = await client.get("/signin", params={"next": next_path})
    assert form.status_code == 200
    return await client.post(
        "/signin",
        data={"token": token, "next": next_path, "csrf_token": _hidden_csrf(form.text)},
    )


async def signed_in(client: httpx.AsyncClient, account: Account) -> str:
    """Signs in; the CSRF token of the session."""
    response = await sign_in(client, account.token)
    assert response.status_code == 303, response.text
    home = await client.get("/")
    assert home.status_code == 200
    return _meta_csrf(home.text)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/signin?next=%2F"),
        ("/rooms/standup", "/signin?next=%2Frooms%2Fstandup"),
        ("/transcripts?q=dash", "/signin?next=%2Ftranscripts%3Fq%3Ddash"),
        ("/transcripts/trn_1", "/signin?next=%2Ftranscripts%2Ftrn_1"),
    ],
)
async def test_pages_send_strangers_to_sign_in(
    client: httpx.AsyncClient, path: str, expected: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == expected


async def test_a_bad_token_shows_an_error_and_sets_no_session(
    client: httpx.AsyncClient, alice: Account
) -> None:
    response = await sign_in(client, "rfl_not-a-real-token")
    assert response.status_code == 401
    assert "unknown or revoked" in _text(response.text)
    assert 'aria-invalid="true"' in response.text
    assert "reflector_session" not in response.headers.get("set-cookie", "")
    assert "reflector_session" not in client.cookies
    assert (await client.get("/")).status_code == 303


async def test_sign_in_sets_a_safe_cookie_and_goes_where_asked(
    client: httpx.AsyncClient, alice: Account
) -> None:
    response = await sign_in(client, alice.token, "/transcripts")
    assert response.status_code == 303
    assert response.headers["location"] == "/transcripts"
    cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    session = next(c for c in cookies if c.startswith("reflector_session="))
    flags = {part.strip().split("=")[0].lower() for part in session.split(";")}
    assert {"httponly", "path", "max-age"} <= flags
    assert "samesite=lax" in session.lower()
    assert "secure" not in flags  # BASE_URL is http here
    value = session.split(";")[0].split("=", 1)[1]
    assert value.startswith("rfs_")
    assert alice.token not in session
    page = await client.get("/transcripts")
    assert page.status_code == 200
    assert "alice@example.com" in page.text


def test_cookies_are_secure_and_host_bound_behind_https(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, BASE_URL="https://reflector.example.com")
    response = Response()
    web_session.set_session_cookie(response, settings, "rfs_x")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-reflector_session=rfs_x;")
    lowered = cookie.lower()
    for flag in ("httponly", "secure", "path=/", "samesite=lax"):
        assert flag in lowered
    assert "domain" not in lowered


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
async def test_sign_in_only_goes_to_local_paths(
    client: httpx.AsyncClient, alice: Account, target: str
) -> None:
    response = await sign_in(client, alice.token, target)
    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_sign_in_needs_the_forms_token(client: httpx.AsyncClient, alice: Account) -> None:
    response = await client.post("/signin", data={"token": alice.token, "csrf_token": "x" * 43})
    assert response.status_code == 403
    assert "reflector_session" not in client.cookies


async def test_a_form_post_without_the_csrf_token_is_refused(
    client: httpx.AsyncClient, alice: Account
) -> None:
    csrf = await signed_in(client, alice)
    for data in ({"name": "standup"}, {"name": "standup", "csrf_token": "wrong"}):
        response = await client.post("/rooms", data=data)
        assert response.status_code == 403
        assert "CSRF" in _text(response.text)
    foreign = await client.post(
        "/rooms",
        data={"name": "standup", "csrf_token": csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    rooms = await client.get("/v1/rooms", headers=alice.headers)
    assert rooms.json()["items"] == []
    created = await client.post("/rooms", data={"name": "standup", "csrf_token": csrf})
    assert created.status_code == 303
    assert created.headers["location"] == "/rooms/standup"


async def test_the_cookie_api_needs_the_csrf_header_to_change_things(
    client: httpx.AsyncClient, alice: Account
) -> None:
    csrf = await signed_in(client, alice)
    assert (await client.get("/v1/rooms")).status_code == 200
    refused = await client.post("/v1/rooms", json={"name": "standup"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "csrf_failed"
    wrong = await client.post("/v1/rooms", json={"name": "standup"}, headers={"X-CSRF-Token": "x"})
    assert wrong.status_code == 403
    made = await client.post("/v1/rooms", json={"name": "standup"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    # A Bearer call needs none, even with the cookie beside it.
    bearer = await client.post("/v1/rooms", json={"name": "other"}, headers=alice.headers)
    assert bearer.status_code == 201


async def test_the_room_form_shows_the_apis_validation_message(
    client: httpx.AsyncClient, alice: Account
) -> None:
    csrf = await signed_in(client, alice)
    api = await client.post("/v1/rooms", json={"name": "Bad Name"}, headers=alice.headers)
    assert api.status_code == 422
    page = await client.post("/rooms", data={"name": "Bad Name", "csrf_token": csrf})
    assert page.status_code == 422
    assert api.json()["detail"] in _text(page.text)
    assert 'value="Bad Name"' in page.text  # what was typed is kept
    assert 'role="alert"' in page.text

    assert (await client.post("/rooms", data={"name": "standup", "csrf_token": csrf})).is_redirect
    again = await client.post(
        "/rooms", data={"name": "standup", "csrf_token": csrf, "recording_type": "none"}
    )
    assert again.status_code == 409
    assert "already exists" in _text(again.text)

    odd = await client.post(
        "/rooms", data={"name": "ok", "recording_trigger": "sometimes", "csrf_token": csrf}
    )
    api_odd = await client.post(
        "/v1/rooms", json={"name": "ok", "recording_trigger": "sometimes"}, headers=alice.headers
    )
    assert odd.status_code == api_odd.status_code == 422
    assert api_odd.json()["detail"] in _text(odd.text)


async def test_sign_out_ends_the_session_and_needs_the_token(
    client: httpx.AsyncClient, alice: Account
) -> None:
    csrf = await signed_in(client, alice)
    cookie = client.cookies["reflector_session"]
    refused = await client.post("/signout", data={})
    assert refused.status_code == 403
    assert (await client.get("/")).status_code == 200
    out = await client.post("/signout", data={"csrf_token": csrf})
    assert out.status_code == 303
    assert out.headers["location"] == "/signin"
    assert "reflector_session" not in client.cookies
    # The old cookie is dead server-side too.
    client.cookies.set("reflector_session", cookie)
    assert (await client.get("/")).status_code == 303
    assert (await client.get("/v1/rooms")).status_code == 401


async def test_revoking_the_api_token_ends_its_sessions(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    await signed_in(client, alice)
    async with create_session_factory(engine)() as session:
        tokens = list(await session.scalars(select(ApiToken).order_by(ApiToken.created_at)))
        parent = next(t for t in tokens if not t.name.startswith("web-session:"))
        await auth.revoke_token(session, parent.id)
        await session.commit()
    assert (await client.get("/")).status_code == 303


async def test_a_session_secret_is_not_an_api_token(
    client: httpx.AsyncClient, alice: Account
) -> None:
    await signed_in(client, alice)
    secret = client.cookies["reflector_session"]
    client.cookies.clear()
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 401
    assert "not an API token" in response.json()["detail"]


async def test_pages_carry_a_strict_policy_and_local_assets(
    client: httpx.AsyncClient, alice: Account
) -> None:
    await signed_in(client, alice)
    page = await client.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "no-store"
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert len(assets) == 3
    assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', page.text))
    for asset in assets:
        got = await client.get(asset)
        assert got.status_code == 200
        assert "immutable" in got.headers["cache-control"]
    assert (await client.get("/static/nope.js")).status_code == 404


async def test_the_room_page_shows_the_meeting_and_its_people(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    meeting = await make_meeting(engine, alice)
    async with create_session_factory(engine)() as session:
        row = await session.get(Meeting, meeting.id)
        assert row is not None
        row.end_date = utcnow() + timedelta(hours=1)
        row.num_clients = 2
        session.add_all(
            [
                Participant(
                    meeting_id=meeting.id,
                    participant_id="p1",
                    display_name="Ann",
                    state_at=utcnow(),
                    present=True,
                ),
                Participant(
                    meeting_id=meeting.id,
                    participant_id="p2",
                    display_name="Bob",
                    state_at=utcnow(),
                    present=False,
                ),
            ]
        )
        await session.commit()
    await signed_in(client, alice)
    page = await client.get("/rooms/standup")
    assert page.status_code == 200
    assert f'data-meeting-id="{meeting.id}"' in page.text
    assert meeting.room_url in page.text
    assert 'id="num-clients">2<' in page.text
    people = page.text.split('id="participants"')[1].split("</ul>")[0]
    assert "Ann" in people
    assert "Bob" not in people
    assert "frame-src https://sandbox.whereby.com" in page.headers["content-security-policy"]
    assert (await client.get("/rooms/nope")).status_code == 404


async def _ended_transcript(engine: AsyncEngine, account: Account, **fields: object) -> str:
    doc = TranscriptDocument(
        duration=20.0,
        language="en",
        title="Planning <the> week",
        short_summary="Ann and Bob plan the week.",
        long_summary="- plan\n- ship",
        action_items=[ActionItem(text="Send the notes", owner="Ann", start=3.0)],
        topics=[Topic(title="The plan", summary="What happens.", start=0.0, end=20.0)],
        speakers=[Speaker(id=0, name="Ann"), Speaker(id=1, name="Speaker 2")],
        segments=[
            Segment(speaker=0, start=0.5, end=4.0, text="Hello Dashwood."),
            Segment(speaker=1, start=4.5, end=9.0, text="<script>alert(1)</script> yes"),
        ],
        words=[Word(text="Hello", start=0.5, end=1.0, speaker=0)],
    )
    async with create_session_factory(engine)() as session:
        row = Transcript(
            owner_id=account.user_id,
            source="upload",
            status="ended",
            storage_prefix="transcripts/x",
            title=doc.title,
            short_summary=doc.short_summary,
            duration=doc.duration,
            language="en",
            document=doc.model_dump_json(),
        )
        for name, value in fields.items():
            setattr(row, name, value)
        session.add(row)
        await session.commit()
        return row.id


async def test_the_transcript_page_renders_everything_escaped(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account, bob: Account
) -> None:
    transcript_id = await _ended_transcript(engine, alice)
    await signed_in(client, alice)
    page = await client.get(f"/transcripts/{transcript_id}")
    assert page.status_code == 200
    text = _text(page.text)
    for expected in ("Planning <the> week", "Ann and Bob plan the week.", "Send the notes"):
        assert expected in text
    assert "<script>alert(1)</script>" not in page.text
    assert page.text.count('data-speaker-id="0"') == 3  # speakers list, a line, the action item
    assert f'src="/v1/transcripts/{transcript_id}/audio"' in page.text
    for fmt in ("vtt", "srt", "json", "md", "txt"):
        assert f"/v1/transcripts/{transcript_id}/export?format={fmt}" in page.text
    listing = await client.get("/transcripts")
    assert f"/transcripts/{transcript_id}" in listing.text

    client.cookies.clear()
    await signed_in(client, bob)
    assert (await client.get(f"/transcripts/{transcript_id}")).status_code == 404


async def test_the_start_meeting_form_works_without_javascript(
    client: httpx.AsyncClient, alice: Account
) -> None:
    csrf = await signed_in(client, alice)
    assert (await client.post("/rooms", data={"name": "standup", "csrf_token": csrf})).is_redirect
    page = await client.get("/rooms/standup")
    assert "Start meeting" in page.text
    refused = await client.post("/rooms/standup/meeting", data={})
    assert refused.status_code == 403
    started = await client.post("/rooms/standup/meeting", data={"csrf_token": csrf})
    assert started.status_code == 303
    assert started.headers["location"] == "/rooms/standup"
    page = await client.get("/rooms/standup")
    assert 'id="meeting"' in page.text
    assert "Join the meeting" in page.text
    assert "Join as host" in page.text


async def test_processing_and_failed_transcripts_say_so(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    busy = await _ended_transcript(
        engine, alice, status="processing", step="transcribe", document=None, title=None
    )
    failed = await _ended_transcript(
        engine, alice, status="error", error="The file has no audio track.", document=None
    )
    await signed_in(client, alice)
    page = await client.get(f"/transcripts/{busy}")
    assert page.status_code == 200
    assert "Being processed" in page.text
    assert "transcribe" in page.text
    assert 'data-status="processing"' in page.text
    assert "<audio" not in page.text
    page = await client.get(f"/transcripts/{failed}")
    assert "The file has no audio track." in page.text
    assert 'role="alert"' in page.text


async def test_a_public_transcript_reads_signed_out_without_controls(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    public = await _ended_transcript(engine, alice, share_mode="public")
    private = await _ended_transcript(engine, alice)
    page = await client.get(f"/transcripts/{public}")
    assert page.status_code == 200
    assert "Hello Dashwood." in page.text
    assert "Rename" not in page.text
    assert 'id="share"' not in page.text
    assert (await client.get(f"/transcripts/{private}")).status_code == 303
    await signed_in(client, alice)
    page = await client.get(f"/transcripts/{public}")
    assert "Rename" in page.text
    assert 'id="share"' in page.text


async def test_unusable_sessions_are_purged(engine: AsyncEngine, alice: Account) -> None:
    """Expired sessions, and sessions signed out a day ago, are deleted; live ones, ones
    signed out just now, and API tokens stay."""
    factory = create_session_factory(engine)
    async with factory() as db:
        opened = [await web_session.open_session(db, alice.token) for _ in range(4)]
        await db.commit()
    live, expired, signed_out, just_signed_out = [s for s in opened if s is not None]
    now = utcnow()
    async with factory() as db:
        for gone, when in ((expired, "created_at"), (signed_out, "revoked_at")):
            token = await db.get(ApiToken, gone.token.id)
            assert token is not None
            setattr(token, when, now - web_session.SESSION_MAX_AGE - timedelta(minutes=1))
        token = await db.get(ApiToken, just_signed_out.token.id)
        assert token is not None
        token.revoked_at = now
        await db.commit()
    async with factory() as db:
        assert await web_session.purge_sessions(db, now) == 2
        await db.commit()
        left = set(await db.scalars(select(ApiToken.id)))
    assert expired.token.id not in left
    assert signed_out.token.id not in left
    assert {live.token.id, just_signed_out.token.id} <= left
    # The API token the sessions were opened with is not a session: it stays.
    assert any(not token.name.startswith("web-session:") for token in await api_tokens(engine))


async def api_tokens(engine: AsyncEngine) -> list[ApiToken]:
    async with create_session_factory(engine)() as db:
        return list(await auth.list_tokens(db))
