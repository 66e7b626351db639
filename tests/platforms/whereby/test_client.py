"""The Whereby REST client against a scripted HTTP server on loopback (real sockets, no mocks)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from reflector.errors import BadGateway, ServiceUnavailable
from reflector.platforms.whereby.client import (
    MAX_SESSION_PAGES,
    WherebyBadRequest,
    WherebyClient,
    WherebyError,
    WherebyForbidden,
    WherebyInvalidResponse,
    WherebyNotConfigured,
    WherebyNotFound,
    WherebyRateLimited,
    WherebyRejected,
    WherebyUnauthorized,
    WherebyUnavailable,
)
from tests.fakes.scripted_http import Reply, ScriptedHttpServer

API_KEY = "eyJhbGciOiJIUzI1NiJ9.test-whereby-key.c2lnbmF0dXJl"
ROOM = "/standup-546f6c91-74b2-4597-b32a-6aeefa9ed90f"
MEETING: dict[str, Any] = {
    "meetingId": "87673375",
    "roomName": ROOM,
    "roomUrl": f"https://reflector.whereby.com{ROOM}",
    "startDate": "2024-05-01T10:00:00.123Z",
    "endDate": "2024-05-01T20:00:00+02:00",
    "hostRoomUrl": f"https://reflector.whereby.com{ROOM}?roomKey=host-token",
    "someFieldWherebyAddsLater": {"nested": [1, 2, 3]},
}
CREATE_BODY: dict[str, Any] = {
    "endDate": "2024-05-01T18:00:00Z",
    "isLocked": False,
    "roomMode": "group",
    "roomNamePrefix": "standup-",
    "roomNamePattern": "uuid",
    "fields": ["hostRoomUrl"],
    "recording": {
        "type": "cloud",
        "destination": {
            "provider": "s3",
            "bucket": "recordings/whereby",
            "accessKeyId": "AKIA-test",
            "accessKeySecret": "aws-secret",
            "fileFormat": "mp4",
        },
        "startTrigger": "automatic-2nd-participant",
    },
}


class SleepRecorder:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


MakeClient = Callable[..., WherebyClient]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2.0) as client:
        yield client


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_client(
    scripted_http: ScriptedHttpServer, http: httpx.AsyncClient, sleeps: SleepRecorder
) -> MakeClient:
    def make(**overrides: Any) -> WherebyClient:
        options: dict[str, Any] = {
            "http": http,
            "api_key": API_KEY,
            "base_url": f"{scripted_http.url}/v1",
            "sleep": sleeps,
        }
        options.update(overrides)
        return WherebyClient(**options)

    return make


@pytest.fixture
def whereby(make_client: MakeClient) -> WherebyClient:
    return make_client()


def assert_no_key(error: Exception) -> None:
    assert API_KEY not in str(error)
    assert isinstance(error, BadGateway | ServiceUnavailable)
    assert API_KEY not in error.detail


# -- meetings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["/v1", "/v1/"])
async def test_create_meeting_round_trip(
    scripted_http: ScriptedHttpServer, make_client: MakeClient, suffix: str
) -> None:
    scripted_http.script("POST", "/v1/meetings", Reply(201, MEETING))
    whereby = make_client(base_url=scripted_http.url + suffix)

    meeting = await whereby.create_meeting(CREATE_BODY)

    [request] = scripted_http.requests
    assert request.method == "POST"
    assert request.path == "/v1/meetings"
    assert request.json == CREATE_BODY
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"

    assert meeting.meeting_id == "87673375"
    assert meeting.room_name == ROOM
    assert meeting.room_url == MEETING["roomUrl"]
    assert meeting.host_room_url == MEETING["hostRoomUrl"]
    assert meeting.viewer_room_url is None
    assert meeting.start_date == datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert meeting.start_date.tzinfo is not None
    # An offset other than Z is normalised to UTC, the same instant.
    assert meeting.end_date == datetime(2024, 5, 1, 18, 0, tzinfo=UTC)
    assert meeting.end_date.utcoffset() is not None
    assert not hasattr(meeting, "some_field_whereby_adds_later")


async def test_meeting_without_optional_fields_and_naive_times(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient
) -> None:
    bare = {k: v for k, v in MEETING.items() if k != "hostRoomUrl"}
    bare.update(meetingId=87673375, startDate="2024-05-01T10:00:00", endDate="2024-05-01T18:00:00")
    scripted_http.script("POST", "/v1/meetings", Reply(201, bare))

    meeting = await whereby.create_meeting(CREATE_BODY)

    assert meeting.meeting_id == "87673375"
    assert meeting.host_room_url is None
    assert meeting.start_date == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert meeting.end_date.tzinfo is UTC


@pytest.mark.parametrize(("host_url", "query"), [(False, {}), (True, {"fields": "hostRoomUrl"})])
async def test_get_meeting(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient, host_url: bool, query: Any
) -> None:
    scripted_http.script("GET", "/v1/meetings/87673375", Reply(200, MEETING))

    meeting = await whereby.get_meeting("87673375", host_url=host_url)

    assert meeting is not None
    assert meeting.meeting_id == "87673375"
    [request] = scripted_http.requests
    assert request.query == query
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


async def test_get_missing_meeting_is_none(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient, sleeps: SleepRecorder
) -> None:
    scripted_http.script("GET", "/v1/meetings/1", Reply(404, {"error": "Meeting not found"}))
    assert await whereby.get_meeting("1") is None
    assert sleeps.waits == []


@pytest.mark.parametrize("reply", [Reply(204), Reply(404, {"error": "Meeting not found"})])
async def test_delete_meeting_and_already_gone(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient, reply: Reply
) -> None:
    scripted_http.script("DELETE", "/v1/meetings/87673375", reply)
    await whereby.delete_meeting("87673375")
    [request] = scripted_http.requests
    assert request.method == "DELETE"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


# -- retries ----------------------------------------------------------------------------------


async def test_5xx_is_retried_with_backoff(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient, sleeps: SleepRecorder
) -> None:
    scripted_http.script(
        "POST", "/v1/meetings", Reply(503, {"error": "down"}), Reply(502), Reply(201, MEETING)
    )
    with capture_logs() as logs:
        meeting = await whereby.create_meeting(CREATE_BODY)

    assert meeting.meeting_id == "87673375"
    requests = scripted_http.requests_to("POST", "/v1/meetings")
    assert len(requests) == 3
    assert all(r.json == CREATE_BODY for r in requests)
    # backoff_base * 2**attempt plus at most 10 % jitter.
    assert len(sleeps.waits) == 2
    assert 0.5 <= sleeps.waits[0] <= 0.55
    assert 1.0 <= sleeps.waits[1] <= 1.1
    retries = [line for line in logs if line["event"] == "whereby.retry"]
    assert [line["reason"] for line in retries] == ["503", "502"]
    assert API_KEY not in repr(logs)


async def test_429_waits_retry_after(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient, sleeps: SleepRecorder
) -> None:
    limited = Reply(
        429,
        {"error": "Rate limit active", "data": {"msLeft": 38689}},
        headers={"Retry-After": "7", "X-RateLimit-Remaining": "0"},
    )
    scripted_http.script("POST", "/v1/meetings", limited, Reply(201, MEETING))

    await whereby.create_meeting(CREATE_BODY)

    assert sleeps.waits == [7.0]
    assert len(scripted_http.requests) == 2


async def test_retry_after_is_capped(
    scripted_http: ScriptedHttpServer, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    limited = Reply(429, {"error": "Rate limit active"}, headers={"Retry-After": "120"})
    scripted_http.script("GET", "/v1/meetings/1", limited, Reply(200, MEETING))

    await make_client(retry_after_max=30.0).get_meeting("1")

    assert sleeps.waits == [30.0]


async def test_429_falls_back_to_ms_left(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient, sleeps: SleepRecorder
) -> None:
    limited = Reply(429, {"error": "Rate limit active", "data": {"msLeft": 1500}})
    scripted_http.script("POST", "/v1/meetings", limited, Reply(201, MEETING))

    await whereby.create_meeting(CREATE_BODY)

    assert sleeps.waits == [1.5]


async def test_429_without_hint_backs_off(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient, sleeps: SleepRecorder
) -> None:
    scripted_http.script("POST", "/v1/meetings", Reply(429, body=b"slow down"), Reply(201, MEETING))

    await whereby.create_meeting(CREATE_BODY)

    assert len(sleeps.waits) == 1
    assert 0.5 <= sleeps.waits[0] <= 0.55


async def test_timeout_is_retried(
    scripted_http: ScriptedHttpServer, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    scripted_http.script(
        "POST", "/v1/meetings", Reply(201, MEETING, delay=0.6), Reply(201, MEETING)
    )
    async with httpx.AsyncClient(timeout=0.2) as quick:
        whereby = make_client(http=quick)
        with capture_logs() as logs:
            meeting = await whereby.create_meeting(CREATE_BODY)

    assert meeting.meeting_id == "87673375"
    assert len(scripted_http.requests) == 2
    assert len(sleeps.waits) == 1
    [retry] = [line for line in logs if line["event"] == "whereby.retry"]
    assert "timed out" in retry["reason"]


async def test_retries_exhausted(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient, sleeps: SleepRecorder
) -> None:
    scripted_http.script("POST", "/v1/meetings", *[Reply(503)] * 4)

    with pytest.raises(WherebyUnavailable) as caught:
        await whereby.create_meeting(CREATE_BODY)

    error = caught.value
    assert "Whereby did not answer after 4 attempts (last: 503)" in error.detail
    assert error.status_code == 502
    assert error.code == "whereby_unavailable"
    assert error.attempts == 4
    assert error.upstream_status == 503
    assert len(scripted_http.requests) == 4
    assert len(sleeps.waits) == 3
    for attempt, wait in enumerate(sleeps.waits):
        assert 0.5 * 2**attempt <= wait <= 0.55 * 2**attempt
    assert_no_key(error)


async def test_no_retries_means_one_attempt(
    scripted_http: ScriptedHttpServer, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    scripted_http.script("GET", "/v1/meetings/1", Reply(500))

    with pytest.raises(WherebyUnavailable, match=r"after 1 attempt \(last: 500\)"):
        await make_client(max_retries=0).get_meeting("1")

    assert sleeps.waits == []


async def test_rate_limit_exhausted(
    scripted_http: ScriptedHttpServer, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    limited = Reply(429, {"error": "Rate limit active"}, headers={"Retry-After": "3"})
    scripted_http.script("POST", "/v1/meetings", limited, limited)

    with pytest.raises(WherebyRateLimited) as caught:
        await make_client(max_retries=1).create_meeting(CREATE_BODY)

    error = caught.value
    assert error.code == "whereby_rate_limited"
    assert error.status_code == 502
    assert "2 attempts" in error.detail
    assert "429" in error.detail
    assert error.headers == {"Retry-After": "3"}
    assert sleeps.waits == [3.0]


async def test_connection_refused_is_retried_then_reported(
    make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    whereby = make_client(base_url=f"http://127.0.0.1:{closed_port}/v1", max_retries=2)

    with pytest.raises(WherebyUnavailable) as caught:
        await whereby.get_meeting("1")

    assert "after 3 attempts (last: connection failed" in caught.value.detail
    assert caught.value.upstream_status is None
    assert len(sleeps.waits) == 2


# -- refusals ---------------------------------------------------------------------------------


async def test_401_names_the_key(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient, sleeps: SleepRecorder
) -> None:
    scripted_http.script("POST", "/v1/meetings", Reply(401, {"error": "Unauthorized"}))

    with pytest.raises(WherebyUnauthorized) as caught:
        await whereby.create_meeting(CREATE_BODY)

    error = caught.value
    assert error.code == "whereby_unauthorized"
    assert error.status_code == 502
    assert "WHEREBY_API_KEY" in error.detail
    assert "wrong or expired" in error.detail
    assert "Configure > API" in error.detail
    assert len(scripted_http.requests) == 1
    assert sleeps.waits == []
    assert_no_key(error)


async def test_403_explains_the_plan(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient
) -> None:
    scripted_http.script("POST", "/v1/meetings", Reply(403, {"error": "Forbidden"}))

    with pytest.raises(WherebyForbidden) as caught:
        await whereby.create_meeting(CREATE_BODY)

    detail = caught.value.detail
    assert caught.value.code == "whereby_forbidden"
    assert "plan" in detail
    assert "cloud recording" in detail
    assert "recording_type to local or none" in detail
    assert_no_key(caught.value)


async def test_400_quotes_whereby(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient, sleeps: SleepRecorder
) -> None:
    message = '"endDate" must be in the future'
    scripted_http.script("POST", "/v1/meetings", Reply(400, {"error": message}))

    with pytest.raises(WherebyBadRequest) as caught:
        await whereby.create_meeting(CREATE_BODY)

    assert caught.value.code == "whereby_bad_request"
    assert message in caught.value.detail
    assert sleeps.waits == []


async def test_a_key_echoed_by_whereby_is_masked(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient
) -> None:
    scripted_http.script("POST", "/v1/meetings", Reply(400, {"error": f"bad token {API_KEY}"}))

    with pytest.raises(WherebyBadRequest) as caught:
        await whereby.create_meeting(CREATE_BODY)

    assert "bad token ***" in caught.value.detail
    assert_no_key(caught.value)


async def test_404_on_create_points_at_the_url(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient
) -> None:
    scripted_http.script("POST", "/v1/meetings", Reply(404, body=b"Not Found"))

    with pytest.raises(WherebyNotFound) as caught:
        await whereby.create_meeting(CREATE_BODY)

    assert caught.value.code == "whereby_not_found"
    assert "WHEREBY_API_URL" in caught.value.detail
    assert scripted_http.url in caught.value.detail


async def test_other_4xx(scripted_http: ScriptedHttpServer, whereby: WherebyClient) -> None:
    scripted_http.script("POST", "/v1/meetings", Reply(409, {"message": "Conflict here"}))

    with pytest.raises(WherebyRejected) as caught:
        await whereby.create_meeting(CREATE_BODY)

    assert caught.value.code == "whereby_rejected"
    assert caught.value.upstream_status == 409
    assert "409" in caught.value.detail
    assert "Conflict here" in caught.value.detail


async def test_invalid_json_in_a_success(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient
) -> None:
    scripted_http.script("POST", "/v1/meetings", Reply(201, body=b"<html>proxy</html>"))

    with pytest.raises(WherebyInvalidResponse) as caught:
        await whereby.create_meeting(CREATE_BODY)

    assert caught.value.code == "whereby_invalid_response"
    assert "not valid JSON" in caught.value.detail


async def test_success_in_the_wrong_shape(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient
) -> None:
    scripted_http.script("GET", "/v1/meetings/1", Reply(200, {"meetingId": "1"}))

    with pytest.raises(WherebyInvalidResponse) as caught:
        await whereby.get_meeting("1")

    assert "roomName" in caught.value.detail
    assert "Field required" in caught.value.detail


# -- room sessions ----------------------------------------------------------------------------


def session(number: int, ended: str | None) -> dict[str, Any]:
    return {
        "roomSessionId": f"session-{number}",
        "startedAt": f"2024-05-01T1{number}:00:00.000Z",
        "endedAt": ended,
        "totalParticipantMinutes": 12,
    }


@pytest.mark.parametrize("room_name", [ROOM, ROOM.lstrip("/")])
async def test_room_sessions_follow_the_cursor(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient, room_name: str
) -> None:
    scripted_http.script(
        "GET",
        "/v1/insights/room-sessions",
        Reply(200, {"results": [session(1, "2024-05-01T11:30:00Z")], "cursor": "page-2"}),
        Reply(200, {"results": [session(2, None)], "cursor": None}),
    )

    sessions = await whereby.room_sessions(room_name)

    assert [s.room_session_id for s in sessions] == ["session-1", "session-2"]
    assert sessions[0].started_at == datetime(2024, 5, 1, 11, tzinfo=UTC)
    assert sessions[0].ended_at == datetime(2024, 5, 1, 11, 30, tzinfo=UTC)
    assert sessions[1].ended_at is None
    first, second = scripted_http.requests
    assert first.query == {"roomName": ROOM}
    assert second.query == {"roomName": ROOM, "cursor": "page-2"}


async def test_room_sessions_pages_are_bounded(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient
) -> None:
    endless = [
        Reply(200, {"results": [], "cursor": f"page-{page}"}) for page in range(MAX_SESSION_PAGES)
    ]
    scripted_http.script("GET", "/v1/insights/room-sessions", *endless)

    assert await whereby.room_sessions(ROOM) == []
    assert len(scripted_http.requests) == MAX_SESSION_PAGES


async def test_room_sessions_stop_on_a_repeated_cursor(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient
) -> None:
    same = Reply(200, {"results": [session(1, None)], "cursor": "again"})
    scripted_http.script("GET", "/v1/insights/room-sessions", same, same)

    assert len(await whereby.room_sessions(ROOM)) == 2
    assert len(scripted_http.requests) == 2


async def test_room_sessions_without_results(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient
) -> None:
    scripted_http.script("GET", "/v1/insights/room-sessions", Reply(200, {"sessions": []}))

    with pytest.raises(WherebyInvalidResponse, match="results"):
        await whereby.room_sessions(ROOM)


# -- theming ----------------------------------------------------------------------------------


async def test_logo_upload_is_multipart(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient, sleeps: SleepRecorder
) -> None:
    path = f"/v1/rooms/{ROOM.lstrip('/')}/theme/logo"
    scripted_http.script("PUT", path, Reply(503), Reply(204))
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"\r\n--\r\n"

    await whereby.set_room_logo(ROOM, image, "logo.png", "image/png")

    requests = scripted_http.requests_to("PUT", path)
    assert len(requests) == 2  # the body survives a retry
    for request in requests:
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.content_type.startswith("multipart/form-data; boundary=")
        [part] = request.parts()
        assert part.name == "image"
        assert part.filename == "logo.png"
        assert part.content_type == "image/png"
        assert part.data == image


async def test_colors_send_only_what_is_given(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient
) -> None:
    path = f"/v1/rooms/{ROOM.lstrip('/')}/theme/tokens"
    scripted_http.script("PUT", path, Reply(204), Reply(204))

    await whereby.set_room_colors(ROOM, primary="#112233", secondary=None, focus="#445566")
    await whereby.set_room_colors(
        ROOM.lstrip("/"), primary="#000000", secondary="#ffffff", focus="#abcdef"
    )

    first, second = scripted_http.requests_to("PUT", path)
    assert first.json == {"tokens": {"colors": {"primary": "#112233", "focus": "#445566"}}}
    assert first.headers["content-type"] == "application/json"
    assert second.json == {
        "tokens": {"colors": {"primary": "#000000", "secondary": "#ffffff", "focus": "#abcdef"}}
    }


async def test_no_colors_sends_nothing(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient
) -> None:
    await whereby.set_room_colors(ROOM, primary=None, secondary=None, focus=None)
    assert scripted_http.requests == []


async def test_theming_an_unknown_room(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient
) -> None:
    path = "/v1/rooms/gone/theme/tokens"
    scripted_http.script("PUT", path, Reply(404, {"error": "Room not found"}))

    with pytest.raises(WherebyNotFound):
        await whereby.set_room_colors("/gone", primary="#000000", secondary=None, focus=None)


# -- key check --------------------------------------------------------------------------------


async def test_check_key_accepted(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient
) -> None:
    scripted_http.script("GET", "/v1/meetings", Reply(200, {"results": [], "cursor": None}))

    assert await whereby.check_key() is True
    [request] = scripted_http.requests
    assert request.query == {"limit": "1"}
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


async def test_check_key_refused(
    scripted_http: ScriptedHttpServer, whereby: WherebyClient, sleeps: SleepRecorder
) -> None:
    scripted_http.script("GET", "/v1/meetings", Reply(401, {"error": "Unauthorized"}))

    assert await whereby.check_key() is False
    assert sleeps.waits == []


@pytest.mark.parametrize(
    ("replies", "error"),
    [([Reply(403)], WherebyForbidden), ([Reply(500)] * 4, WherebyUnavailable)],
)
async def test_check_key_other_failures_raise(
    scripted_http: ScriptedHttpServer,
    whereby: WherebyClient,
    replies: list[Reply],
    error: type[WherebyError],
) -> None:
    scripted_http.script("GET", "/v1/meetings", *replies)

    with pytest.raises(error):
        await whereby.check_key()


# -- not configured ---------------------------------------------------------------------------

CALLS: list[Callable[[WherebyClient], Awaitable[object]]] = [
    lambda w: w.create_meeting(CREATE_BODY),
    lambda w: w.get_meeting("1"),
    lambda w: w.delete_meeting("1"),
    lambda w: w.room_sessions(ROOM),
    lambda w: w.set_room_logo(ROOM, b"png", "logo.png", "image/png"),
    lambda w: w.set_room_colors(ROOM, primary="#000000", secondary=None, focus=None),
    lambda w: w.check_key(),
]


@pytest.mark.parametrize("call", CALLS)
async def test_no_key_fails_before_any_request(
    scripted_http: ScriptedHttpServer,
    make_client: MakeClient,
    call: Callable[[WherebyClient], Awaitable[object]],
) -> None:
    with pytest.raises(WherebyNotConfigured) as caught:
        await call(make_client(api_key=None))

    error = caught.value
    assert error.status_code == 503
    assert error.code == "whereby_not_configured"
    assert "WHEREBY_API_KEY is not set" in error.detail
    assert scripted_http.requests == []
