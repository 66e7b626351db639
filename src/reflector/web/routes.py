"""The web pages: sign-in, rooms, a room's live meeting, transcripts and search.

Server-rendered Jinja2 templates with a little vanilla JavaScript (static/app.js) that calls
the JSON API with the session cookie and the page's CSRF token. Everything is served from
here: no CDN. Pages answer HTML, also for their errors; the API keeps its JSON errors.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from reflector.auth.models import User
from reflector.db.base import utcnow
from reflector.deps import SessionDep
from reflector.errors import AppError, NotFound
from reflector.meetings import service as meetings
from reflector.meetings.routes import platform_for
from reflector.pagination import MAX_LIMIT
from reflector.platforms.registry import DEFAULT_PLATFORM, platform_names
from reflector.platforms.whereby.events import BOT_ROLES
from reflector.rooms import service as rooms
from reflector.rooms.models import RecordingTrigger, RecordingType, RoomMode
from reflector.rooms.schemas import RoomCreate
from reflector.settings import Settings
from reflector.transcripts import access
from reflector.transcripts.schemas import TranscriptOut
from reflector.validation import describe_validation_error
from reflector.web import queries
from reflector.web import session as web_session
from reflector.web.session import WebSession

router = APIRouter(include_in_schema=False, tags=["web"])

_HERE = Path(__file__).resolve().parent
_STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
EXPORT_FORMATS = (
    ("vtt", "WebVTT"),
    ("srt", "SRT"),
    ("json", "JSON"),
    ("md", "Markdown"),
    ("txt", "Text"),
)
SHARE_MODES = (
    ("private", "Only me"),
    ("room", "Everyone signed in to this Reflector"),
    ("public", "Anyone with the link"),
)


@dataclass(frozen=True)
class _StaticFile:
    body: bytes
    media_type: str
    version: str


def _load_static() -> dict[str, _StaticFile]:
    files: dict[str, _StaticFile] = {}
    for path in sorted((_HERE / "static").iterdir()):
        media_type = _STATIC_TYPES.get(path.suffix)
        if media_type is None or not path.is_file():
            continue
        body = path.read_bytes()
        files[path.name] = _StaticFile(body, media_type, hashlib.sha256(body).hexdigest()[:12])
    return files


_STATIC = _load_static()


def static_url(name: str) -> str:
    """The file's URL with its content hash, so that browsers may cache it for good."""
    return f"/static/{name}?v={_STATIC[name].version}"


def clock(seconds: float | None) -> str:
    """12.3 -> "0:12"; 3725 -> "1:02:05"."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


templates = Jinja2Templates(directory=str(_HERE / "templates"))
templates.env.filters["clock"] = clock
templates.env.filters["when"] = when
templates.env.globals["static_url"] = static_url


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


_NONE = "'none'"


def _csp(frame_origin: str | None = None) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "media-src 'self'",
            "connect-src 'self'",
            f"frame-src {frame_origin or _NONE}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    web: WebSession | None,
    status_code: int = 200,
    frame_origin: str | None = None,
) -> Response:
    context = {"user": web.user if web else None, "csrf": web.csrf if web else "", **context}
    headers = {
        "Content-Security-Policy": _csp(frame_origin),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }
    return templates.TemplateResponse(
        request, name, context, status_code=status_code, headers=headers
    )


def _error_page(
    request: Request, web: WebSession | None, status_code: int, heading: str, detail: str
) -> Response:
    context = {"heading": heading, "detail": detail, "status_code": status_code}
    return _page(request, "error.html", context, web=web, status_code=status_code)


def _to_signin(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/signin?{urlencode({'next': target})}", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _csrf_error(request: Request, web: WebSession, exc: AppError) -> Response:
    return _error_page(request, web, exc.status_code, "This form could not be accepted", exc.detail)


# ---------------------------------------------------------------------------- sign-in


def _signin_page(
    request: Request, next_path: str, *, error: str | None = None, status_code: int = 200
) -> Response:
    value = web_session.signin_csrf(request)
    context = {"next": next_path, "signin_csrf": value, "error": error, "nav": "signin"}
    response = _page(request, "signin.html", context, web=None, status_code=status_code)
    web_session.set_signin_cookie(response, _settings(request), value)
    return response


@router.get("/signin")
async def signin_form(
    request: Request, db: SessionDep, next_path: Annotated[str | None, Query(alias="next")] = None
) -> Response:
    target = web_session.safe_next(next_path)
    if await web_session.load_session(db, request) is not None:
        return RedirectResponse(target, status_code=303)
    return _signin_page(request, target)


@router.post("/signin")
async def signin(request: Request, db: SessionDep) -> Response:
    form = await _form(request)
    target = web_session.safe_next(form.get("next"))
    if not web_session.check_signin_csrf(request, form.get(web_session.CSRF_FIELD)):
        return _signin_page(
            request,
            target,
            error="The sign-in form had expired or came from another site; please try again.",
            status_code=403,
        )
    opened = await web_session.open_session(db, form.get("token", "").strip())
    if opened is None:
        return _signin_page(
            request,
            target,
            error="That API token is unknown or revoked. Paste a token from 'reflector tokens "
            "create EMAIL' (the first 'reflector serve' printed one).",
            status_code=401,
        )
    await db.commit()
    response = RedirectResponse(target, status_code=303)
    settings = _settings(request)
    web_session.set_session_cookie(response, settings, opened.secret)
    web_session.clear_signin_cookie(response, settings)
    return response


@router.post("/signout")
async def signout(request: Request, db: SessionDep) -> Response:
    form = await _form(request)
    web = await web_session.load_session(db, request)
    if web is not None:
        try:
            web_session.check_csrf(request, web, form.get(web_session.CSRF_FIELD))
        except web_session.CsrfRejected as exc:
            return _csrf_error(request, web, exc)
        await web_session.close_session(db, web)
        await db.commit()
    response = RedirectResponse("/signin", status_code=303)
    web_session.clear_session_cookie(response, _settings(request))
    return response


# ---------------------------------------------------------------------------- rooms


_ROOM_CHOICES = {
    "platforms": platform_names(),
    "recording_types": [kind.value for kind in RecordingType],
    "recording_triggers": [kind.value for kind in RecordingTrigger],
    "room_modes": [kind.value for kind in RoomMode],
}
_ROOM_DEFAULTS = {
    "name": "",
    "platform": DEFAULT_PLATFORM,
    "recording_type": RecordingType.cloud.value,
    "recording_trigger": RecordingTrigger.automatic_2nd_participant.value,
    "room_mode": RoomMode.normal.value,
    "is_locked": False,
}


async def _rooms_page(
    request: Request,
    db: AsyncSession,
    web: WebSession,
    *,
    cursor: str | None = None,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    try:
        items, next_cursor = await rooms.list_rooms(db, web.user, limit=MAX_LIMIT, cursor=cursor)
    except AppError:  # a cursor this site did not make
        items, next_cursor = await rooms.list_rooms(db, web.user, limit=MAX_LIMIT, cursor=None)
    context = {
        "nav": "rooms",
        "rooms": items,
        "next_cursor": next_cursor,
        "values": {**_ROOM_DEFAULTS, **(values or {})},
        "error": error,
        **_ROOM_CHOICES,
    }
    return _page(request, "rooms.html", context, web=web, status_code=status_code)


@router.get("/")
async def rooms_page(request: Request, db: SessionDep, cursor: str | None = None) -> Response:
    web = await web_session.load_session(db, request)
    if web is None:
        return _to_signin(request)
    return await _rooms_page(request, db, web, cursor=cursor)


def _room_values(form: dict[str, str]) -> dict[str, Any]:
    """The JSON body the form stands for: fields left out take their defaults, as in the API."""
    values: dict[str, Any] = {"name": form.get("name", "")}
    for field in ("platform", "recording_type", "recording_trigger", "room_mode"):
        if field in form:
            values[field] = form[field]
    values["is_locked"] = form.get("is_locked") == "on"
    return values


@router.post("/rooms")
async def create_room(request: Request, db: SessionDep) -> Response:
    web = await web_session.load_session(db, request)
    if web is None:
        return _to_signin(request)
    form = await _form(request)
    try:
        web_session.check_csrf(request, web, form.get(web_session.CSRF_FIELD))
    except web_session.CsrfRejected as exc:
        return _csrf_error(request, web, exc)
    values = _room_values(form)
    try:
        body = RoomCreate.model_validate(values)
    except ValidationError as exc:
        # The same sentence the API answers for the same JSON body.
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        status_code, _code, detail = describe_validation_error(errors, "application/json")
        return await _rooms_page(
            request, db, web, values=values, error=detail, status_code=status_code
        )
    try:
        room = await rooms.create_room(db, web.user, body)
    except AppError as exc:
        return await _rooms_page(
            request, db, web, values=values, error=exc.detail, status_code=exc.status_code
        )
    await db.commit()
    return RedirectResponse(f"/rooms/{quote(room.name)}", status_code=303)


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


async def _room_page(
    request: Request,
    db: AsyncSession,
    web: WebSession,
    name: str,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    try:
        room = await rooms.get_room(db, web.user, name)
    except NotFound as exc:
        return _error_page(request, web, 404, "No such room", exc.detail)
    active = await meetings.reusable_meeting(db, room.id, utcnow())
    meeting = (
        await meetings.meeting_details(db, active, room.name, is_owner=True) if active else None
    )
    history, _next = await meetings.list_room_meetings(db, room, limit=20, cursor=None)
    room_transcripts = await queries.owner_transcripts(db, web.user, room_id=room.id, limit=50)
    by_meeting = {row.meeting_id: row for row in room_transcripts if row.meeting_id}
    context = {
        "nav": "rooms",
        "room": room,
        "meeting": meeting,
        "present": [p for p in meeting.participants if p.present and p.role_name not in BOT_ROLES]
        if meeting
        else [],
        "recording": meeting is not None
        and any(p.present and p.role_name == "recorder" for p in meeting.participants),
        "bot_roles": " ".join(sorted(BOT_ROLES)),
        "history": history,
        "by_meeting": by_meeting,
        "transcripts": room_transcripts,
        "error": error,
    }
    frame = _origin_of(meeting.room_url) if meeting else None
    return _page(
        request, "room.html", context, web=web, status_code=status_code, frame_origin=frame
    )


@router.get("/rooms/{name}")
async def room_page(name: str, request: Request, db: SessionDep) -> Response:
    web = await web_session.load_session(db, request)
    if web is None:
        return _to_signin(request)
    return await _room_page(request, db, web, name)


@router.post("/rooms/{name}/meeting")
async def start_meeting(name: str, request: Request, db: SessionDep) -> Response:
    """The form behind "Start meeting" (the page's script calls the API instead)."""
    web = await web_session.load_session(db, request)
    if web is None:
        return _to_signin(request)
    form = await _form(request)
    try:
        web_session.check_csrf(request, web, form.get(web_session.CSRF_FIELD))
    except web_session.CsrfRejected as exc:
        return _csrf_error(request, web, exc)
    try:
        room = await rooms.get_room(db, web.user, name)
        await db.commit()
        await meetings.ensure_meeting(
            request.app.state.session_factory,
            platform_for(request, room.platform),
            room.id,
            meeting_hours=_settings(request).WHEREBY_MEETING_DURATION_HOURS,
        )
    except AppError as exc:
        return await _room_page(
            request, db, web, name, error=exc.detail, status_code=exc.status_code
        )
    return RedirectResponse(f"/rooms/{quote(room.name)}", status_code=303)


# ---------------------------------------------------------------------------- transcripts


@router.get("/transcripts")
async def transcripts_page(request: Request, db: SessionDep, q: str | None = None) -> Response:
    web = await web_session.load_session(db, request)
    if web is None:
        return _to_signin(request)
    rows = await queries.owner_transcripts(db, web.user, limit=100)
    context = {"nav": "transcripts", "transcripts": rows, "q": (q or "")[:200]}
    return _page(request, "transcripts.html", context, web=web)


def _timeline(doc: TranscriptOut) -> float:
    ends = [doc.duration or 0.0]
    ends += [segment.end for segment in doc.segments]
    ends += [topic.end for topic in doc.topics]
    return max(ends) or 1.0


@router.get("/transcripts/{transcript_id}")
async def transcript_page(transcript_id: str, request: Request, db: SessionDep) -> Response:
    """Also for people who may read the transcript without owning it (share modes `room`
    and `public`, the latter signed out too); only the owner gets the controls that change it."""
    web = await web_session.load_session(db, request)
    user: User | None = web.user if web else None
    try:
        row = await access.readable_transcript(db, user, transcript_id)
    except NotFound as exc:
        if web is None:
            return _to_signin(request)
        return _error_page(request, web, 404, "No such transcript", exc.detail)
    doc = TranscriptOut.of(row)
    owner = access.can_change(row, user)
    names = {speaker.id: speaker.name for speaker in doc.speakers}
    by_name = {speaker.name: speaker.id for speaker in doc.speakers}
    context = {
        "nav": "transcripts",
        "t": doc,
        "owner": owner,
        "room_name": await queries.room_name(db, doc.room_id) if owner else None,
        "names": names,
        "by_name": by_name,
        "length": _timeline(doc),
        "exports": EXPORT_FORMATS,
        "share_modes": SHARE_MODES,
    }
    return _page(request, "transcript.html", context, web=web)


# ---------------------------------------------------------------------------- static files


@router.get("/static/{name}")
async def static_file(name: str, v: str | None = None) -> Response:
    found = _STATIC.get(name)
    if found is None:
        return Response("Not found", status_code=404, media_type="text/plain")
    cache = "public, max-age=31536000, immutable" if v == found.version else "public, max-age=0"
    return Response(
        found.body,
        media_type=found.media_type,
        headers={
            "Cache-Control": cache,
            "ETag": f'"{found.version}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
