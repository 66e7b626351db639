"""The pages in a real browser: Debian's Chromium driven by Playwright against `reflector
serve` with its Whereby sandbox and embedded worker on loopback, the real pipeline included.

Sign in with the printed admin token, create a room with the form, start its meeting, watch two
sandbox participants arrive without reloading, stop the recording, follow the transcript from
"processing" to ended, seek from the waveform and from a line, rename a speaker in place,
download the WebVTT export, and search for a spoken word. Screenshots of the rooms list, the
room page, the transcript page and search results at 1280 and 375 px go to
test-artifacts/web/.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import Served, serve_with_sandbox, wait_for

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "web"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 375, "height": 812}
NEW_NAME = "Narrator"


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        reason = "Chromium is not installed (make test installs it: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so the browser tests must run")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Served, str, Path]]:
    """`reflector serve` with its sandbox on free ports; (server, sandbox URL, server log)."""
    with serve_with_sandbox(tmp_path) as running:
        yield running


def _shots(page: Any, name: str) -> None:
    """Full-page screenshots at 1280 and 375 px; at 375 nothing may stick out sideways."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(WIDE)
    page.screenshot(path=str(ARTIFACTS / f"{name}-1280.png"), full_page=True)
    page.set_viewport_size(NARROW)
    page.wait_for_timeout(100)
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= NARROW["width"], f"{name} is {overflow} px wide at 375 px"
    page.screenshot(path=str(ARTIFACTS / f"{name}-375.png"), full_page=True)
    page.set_viewport_size(WIDE)


def _player_near(page: Any, seconds: float, within: float = 0.6) -> None:
    page.wait_for_function(
        "([t, d]) => Math.abs(document.getElementById('audio').currentTime - t) < d",
        arg=[seconds, within],
        timeout=15_000,
    )


def test_a_meeting_becomes_a_transcript_in_the_browser(
    chromium: str, served: tuple[Served, str, Path]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    server, sandbox, log = served
    base, token = server.base, server.token
    assert token is not None
    auth = {"Authorization": f"Bearer {token}"}

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=WIDE, accept_downloads=True)
        context.set_default_timeout(15_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            # Signed out, the rooms list sends us to sign in, and back after it.
            page.goto(f"{base}/")
            expect(page).to_have_url(f"{base}/signin?next=%2F")
            page.get_by_label("API token").fill(token)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(f"{base}/")

            # A room, through the form.
            page.get_by_label("Name", exact=True).fill("standup")
            page.get_by_label("Recording starts").select_option("automatic")
            page.get_by_role("button", name="Create room").click()
            expect(page).to_have_url(f"{base}/rooms/standup")
            page.goto(f"{base}/")
            expect(page.get_by_role("link", name="standup")).to_be_visible()
            _shots(page, "rooms")
            page.get_by_role("link", name="standup").click()

            # Its meeting, and two people arriving while we watch.
            page.get_by_role("button", name="Start meeting").click()
            meeting = page.locator("#meeting")
            expect(meeting).to_be_visible()
            expect(page.get_by_role("link", name="Join the meeting")).to_be_visible()
            expect(page.locator("#num-clients")).to_have_text("0")
            platform_id = meeting.get_attribute("data-platform-meeting-id")
            control = f"{sandbox}/_sandbox/meetings/{platform_id}"
            for name in ("Elinor", "Marianne"):
                joined = httpx.post(f"{control}/participants", json={"displayName": name})
                assert joined.status_code == 201, joined.text
            expect(page.locator("#num-clients")).to_have_text("2", timeout=10_000)
            expect(page.locator("#participants li")).to_have_text(["Elinor", "Marianne"])
            _shots(page, "room")

            # The recording stops; its transcript appears on the room page while processing.
            stopped = httpx.post(f"{control}/recording/stop")
            assert stopped.status_code == 200, stopped.text

            def transcript_id() -> str | None:
                items = httpx.get(f"{base}/v1/recordings", headers=auth).json()["items"]
                return next((r["transcript_id"] for r in items if r["transcript_id"]), None)

            found = wait_for(transcript_id, within=60, every=0.25)
            assert found, log.read_text()[-3000:]
            page.reload()
            page.locator(f'#room-transcripts a[href="/transcripts/{found}"]').click()
            expect(page).to_have_url(f"{base}/transcripts/{found}")
            # Processing shows as such, and the page refreshes itself once it has ended.
            expect(page.locator("#short-summary")).to_be_visible(timeout=300_000)
            data = httpx.get(f"{base}/v1/transcripts/{found}", headers=auth).json()
            assert data["status"] == "ended", data

            expect(page.locator("#title")).to_have_text(data["title"])
            expect(page.locator("#short-summary")).to_have_text(data["short_summary"])
            speakers = page.locator("#speakers [data-speaker-id]")
            expect(speakers).to_have_text([s["name"] for s in data["speakers"]])
            expect(page.locator("#topics .topic-title")).to_have_text(
                [t["title"] for t in data["topics"]]
            )
            expect(page.locator("#timeline button")).to_have_count(len(data["topics"]))
            expect(page.locator("#segments .segment")).to_have_count(len(data["segments"]))

            # The waveform seeks; a line of the transcript brings the player to its start.
            page.wait_for_function("document.getElementById('audio').readyState >= 1")
            duration = float(page.evaluate("document.getElementById('audio').duration"))
            waveform = page.locator("#waveform")
            box = waveform.bounding_box()
            assert box is not None
            waveform.click(position={"x": box["width"] * 0.6, "y": box["height"] / 2})
            _player_near(page, duration * 0.6, within=1.0)
            last = data["segments"][-1]
            line = page.locator("#segments .segment").last
            line.locator(".text").click()
            _player_near(page, last["start"])
            expect(line).to_have_class(re.compile(r"\bcurrent\b"))
            # ?t= opens the page at that moment, the line of that moment highlighted.
            page.goto(f"{base}/transcripts/{found}?t=12")
            _player_near(page, 12.0)
            expect(page.locator("#segments .segment.current")).to_have_count(1)
            _shots(page, "transcript")

            # Rename a speaker in place: the new name everywhere on the page, and after reload.
            first = data["speakers"][0]
            field = page.get_by_label(f"New name for {first['name']}")
            expect(field).to_be_hidden()
            page.get_by_role("button", name=f"Rename {first['name']}").click()
            expect(field).to_be_focused()
            field.fill(NEW_NAME)
            page.get_by_role("button", name="Save name").click()
            named = page.locator(f'[data-speaker-id="{first["id"]}"]')
            expect(named.first).to_have_text(NEW_NAME)
            for _ in range(2):
                count = named.count()
                assert count >= 2  # the speakers list and at least one line
                assert named.all_inner_texts() == [NEW_NAME] * count
                for where in ("#speakers", "#segments"):
                    assert first["name"] not in page.locator(where).inner_text()
                page.reload()
            expect(page.get_by_role("button", name=f"Rename {NEW_NAME}")).to_be_visible()

            # The WebVTT export downloads with the new name in its voice tags.
            with page.expect_download() as downloading:
                page.get_by_role("link", name="WebVTT").click()
            download = downloading.value
            assert download.suggested_filename.endswith(".vtt")
            vtt = Path(download.path()).read_text()
            assert vtt.startswith("WEBVTT")
            assert f"<v {NEW_NAME}>" in vtt

            # Search finds a spoken word; its link opens the transcript at that moment.
            page.goto(f"{base}/transcripts")
            page.get_by_label("Search your transcripts").fill("Dashwood")
            page.get_by_role("button", name="Search").click()
            hits = page.locator("#hits li")
            expect(hits.first).to_be_visible()
            expect(page.locator("#hits mark").first).to_have_text(
                re.compile("dashwood", re.IGNORECASE)
            )
            expect(page).to_have_url(f"{base}/transcripts?q=Dashwood")
            _shots(page, "search")
            spoken = hits.filter(has_text="(segment)")  # where it was said, not the title
            link = spoken.locator(f'a[href^="/transcripts/{found}?t="]').first
            href = link.get_attribute("href")
            assert href is not None
            at = float(href.split("?t=", 1)[1])
            link.click()
            expect(page).to_have_url(f"{base}{href}")
            _player_near(page, at)
            assert not errors, errors
        finally:
            context.close()
            browser.close()
