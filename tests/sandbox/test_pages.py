"""The room page at each room URL, and the index page."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from tests.sandbox.conftest import RunningSandbox


async def test_room_page_shows_the_meeting_and_its_people(sandbox: RunningSandbox) -> None:
    meeting = await sandbox.create_meeting(
        fields=["hostRoomUrl"], recording={"type": "cloud", "startTrigger": "automatic"}
    )
    await sandbox.join(meeting["meetingId"], "<Ann & co>")
    room = meeting["roomName"].lstrip("/")
    await sandbox.api.put(
        f"/rooms/{room}/theme/tokens", json={"tokens": {"colors": {"primary": "#aa3300"}}}
    )

    host_url = urlsplit(meeting["hostRoomUrl"])
    page = await sandbox.http.get(f"{host_url.path}?{host_url.query}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert meeting["roomName"] in html
    assert "&lt;Ann &amp; co&gt;" in html
    assert "<Ann" not in html
    assert "Recorder" in html
    assert "● recording" in html
    assert '<form id="join">' in html
    assert "<option selected>host</option>" in html
    assert "width=device-width" in html
    assert f"/_sandbox/meetings/{meeting['meetingId']}" in html
    assert "--primary:#aa3300" in html
    # Self-contained: nothing loaded from elsewhere.
    assert not re.search(r"""(src|href)=["']https?://(?!127\.0\.0\.1)""", html)

    plain = await sandbox.http.get(f"/{room}")
    assert "<option selected>visitor</option>" in plain.text

    assert (await sandbox.http.get("/no-such-room")).status_code == 404
    index = await sandbox.http.get("/")
    assert index.status_code == 200
    assert f"href='{meeting['roomName']}'" in index.text


async def test_theme_colours_that_are_not_hex_are_not_used(sandbox: RunningSandbox) -> None:
    meeting = await sandbox.create_meeting()
    room = meeting["roomName"].lstrip("/")
    hostile = "red}</style><script>alert(1)</script>"
    await sandbox.api.put(
        f"/rooms/{room}/theme/tokens", json={"tokens": {"colors": {"primary": hostile}}}
    )
    html = (await sandbox.http.get(f"/{room}")).text
    assert "alert(1)" not in html
    assert "--primary:" not in html
