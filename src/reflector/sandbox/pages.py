"""The sandbox's web pages: a list of meetings at `/` and a room page at each room URL path.

Plain server-rendered HTML with small inline scripts that call the control API and reload;
no external assets, so they work offline. Laid out for narrow (375 px) screens first."""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from reflector.sandbox.control import PREFIX
from reflector.sandbox.engine import Sandbox
from reflector.sandbox.state import PARTICIPANT_ROLES, Meeting
from reflector.sandbox.views import meeting_state_json

_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}")
_STYLE = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1d2330;background:#f4f5f7}
main{max-width:42rem;margin:0 auto;padding:1rem}
h1{font-size:1.3rem;margin:.2rem 0 1rem;word-break:break-all}
h2{font-size:1.05rem;margin:0 0 .6rem}
section{background:#fff;border-radius:.6rem;padding:1rem;margin:0 0 1rem;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem .8rem;margin:0}
dt{color:#5b6475}dd{margin:0;word-break:break-all}
ul{list-style:none;margin:0;padding:0}
li{display:flex;gap:.5rem;align-items:center;justify-content:space-between;
padding:.45rem 0;border-top:1px solid #eceef2}
li:first-child{border-top:0}
.who{min-width:0;overflow-wrap:anywhere}
.role{font-size:.8rem;color:#5b6475;margin-left:.3rem}
form{display:flex;flex-wrap:wrap;gap:.5rem}
input,select,button{font:inherit;padding:.5rem .7rem;border-radius:.4rem;border:1px solid #c5cad3}
input{flex:1 1 12rem;min-width:0}
button{background:var(--primary,#3454d1);color:#fff;border:0;cursor:pointer}
button.quiet{background:#e8eaef;color:#1d2330}
button:disabled{opacity:.45;cursor:not-allowed}
.live{color:#b3261e;font-weight:600}
.muted{color:#5b6475}
#error{color:#b3261e;min-height:1.2em;margin:.5rem 0 0}
a{color:var(--primary,#3454d1)}
img.logo{max-height:2.5rem;max-width:10rem;display:block;margin-bottom:.4rem}
"""

_SCRIPT = """
const API = %(api)s;
const errorBox = document.getElementById("error");
async function call(method, path, body) {
  errorBox.textContent = "";
  const response = await fetch(API + path, {
    method, headers: body ? {"Content-Type": "application/json"} : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error || message; } catch (e) {}
    errorBox.textContent = message;
    return false;
  }
  location.reload();
  return true;
}
document.querySelectorAll("[data-leave]").forEach((button) => {
  const path = "/participants/" + button.dataset.leave;
  button.addEventListener("click", () => call("DELETE", path));
});
const join = document.getElementById("join");
join.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData(join);
  call("POST", "/participants", {
    displayName: data.get("displayName"), roleName: data.get("roleName"),
  });
});
for (const [id, action] of [["rec-start", "start"], ["rec-stop", "stop"]]) {
  document.getElementById(id).addEventListener("click", () => call("POST", "/recording/" + action));
}
// Others (tests, other tabs) change the room too: reload when its state changes, unless the
// visitor is typing a name.
let seen = null;
setInterval(async () => {
  const response = await fetch(API);
  if (response.status === 404) location.reload();  // the meeting was deleted
  if (!response.ok) return;
  const state = await response.json();
  const now = JSON.stringify(
    [state.participants, state.session, state.recording, state.recordings]);
  if (seen !== null && now !== seen && document.activeElement?.name !== "displayName") {
    location.reload();
  }
  seen = now;
}, 2000);
"""


def _page(title: str, body: str, *, primary: str | None = None, script: str = "") -> str:
    theme = f":root{{--primary:{escape(primary)}}}" if primary else ""
    scripts = f"<script>{script}</script>" if script else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_STYLE}{theme}</style></head>"
        f"<body><main>{body}</main>{scripts}</body></html>"
    )


def _script_json(value: Any) -> str:
    # Inside <script>, "</" could close the element: escape "<" in the JSON.
    return json.dumps(value).replace("<", "\\u003c")


def room_page(sandbox: Sandbox, meeting: Meeting, room_key: str | None) -> str:
    state = meeting_state_json(
        meeting,
        sandbox.state.themes.get(meeting.room_name),
        [r for r in sandbox.state.recordings if r.meeting_id == meeting.meeting_id],
    )
    info = state["meeting"]
    settings = state["recordingSettings"]
    theme = state["theme"]
    colors = ((theme["tokens"] or {}).get("colors") or {}) if theme else {}
    primary = colors.get("primary")
    if not isinstance(primary, str) or not _HEX_COLOR.fullmatch(primary):
        primary = None
    role = "visitor"
    if room_key == meeting.host_room_key:
        role = "host"
    elif room_key == meeting.viewer_room_key:
        role = "viewer"

    people = []
    for p in state["participants"]:
        if p["roleName"] == "recorder":
            action = "<button class='quiet' type='button' disabled>recording</button>"
        else:
            action = (
                f"<button class='quiet' type='button' data-leave='{escape(p['participantId'])}'>"
                "Leave</button>"
            )
        people.append(
            f"<li><span class='who'>{escape(p['displayName'])}"
            f"<span class='role'>{escape(p['roleName'])}</span></span>{action}</li>"
        )
    people_html = "".join(people) or "<li class='muted'>Nobody is here yet.</li>"

    options = "".join(
        f"<option{' selected' if name == role else ''}>{escape(name)}</option>"
        for name in sorted(PARTICIPANT_ROLES)
    )
    session = state["session"]
    session_text = (
        f"running since {escape(session['startedAt'])}" if session else "none (fewer than 2 here)"
    )
    recording = state["recording"]
    cloud = settings["type"] == "cloud"
    if recording:
        recording_text = (
            f"<span class='live'>● recording</span> since {escape(recording['startedAt'])}"
        )
    elif cloud:
        recording_text = "not recording"
    else:
        recording_text = f"off (recording type {escape(settings['type'])})"
    files = "".join(
        f"<li><span class='who'>{escape(r['key'] or r['recordingId'])}</span>"
        f"<span class='muted'>{escape(r['status'])}</span></li>"
        for r in state["recordings"]
    )
    logo = (
        f"<img class='logo' alt='' src='{PREFIX}/rooms/{escape(meeting.room_name[1:])}/logo'>"
        if theme["logo"]
        else ""
    )
    body = f"""
<header>{logo}<h1>{escape(meeting.room_name)}</h1></header>
<section><h2>People ({len(state["participants"])})</h2><ul>{people_html}</ul></section>
<section><h2>Join</h2>
<form id="join"><input name="displayName" required maxlength="200" placeholder="Your name"
 aria-label="Display name"><select name="roleName" aria-label="Role">{options}</select>
<button type="submit">Join</button></form><p id="error" role="alert"></p></section>
<section><h2>Recording</h2><p>{recording_text}</p>
<form><button id="rec-start" type="button"{"" if cloud and not recording else " disabled"}>
Start recording</button><button id="rec-stop" class="quiet" type="button"
{"" if recording else " disabled"}>Stop recording</button></form>
{f"<ul>{files}</ul>" if files else ""}</section>
<section><h2>Meeting</h2><dl>
<dt>Meeting id</dt><dd>{escape(info["meetingId"])}</dd>
<dt>Room URL</dt><dd><a href="{escape(info["roomUrl"])}">{escape(info["roomUrl"])}</a></dd>
<dt>Ends</dt><dd>{escape(info["endDate"])}</dd>
<dt>Mode</dt><dd>{escape(state["roomMode"])}{" · locked" if state["isLocked"] else ""}</dd>
<dt>Recording</dt><dd>{escape(settings["type"])} · trigger {escape(settings["startTrigger"])}</dd>
<dt>Session</dt><dd>{session_text}</dd>
</dl></section>
<p><a href="/">All meetings</a></p>
"""
    api = f"{PREFIX}/meetings/{meeting.meeting_id}"
    return _page(
        f"{meeting.room_name} · Whereby sandbox",
        body,
        primary=primary,
        script=_SCRIPT % {"api": _script_json(api)},
    )


def index_page(sandbox: Sandbox) -> str:
    meetings = sorted(sandbox.state.meetings.values(), key=lambda m: m.seq)
    rows = "".join(
        f"<li><a class='who' href='{escape(m.room_name)}'>{escape(m.room_name)}</a>"
        f"<span class='muted'>{len(m.people)} here</span></li>"
        for m in meetings
    )
    body = (
        "<h1>Whereby sandbox</h1><section><h2>Meetings</h2>"
        f"<ul>{rows or '<li class=muted>No meetings yet.</li>'}</ul></section>"
        f"<p class='muted'>Control API under <code>{PREFIX}</code>; "
        "the Whereby API under <code>/v1</code>.</p>"
    )
    return _page("Whereby sandbox", body)


def pages_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(index_page(sandbox))

    @router.get("/{room_name}", response_class=HTMLResponse)
    async def room(room_name: str, roomKey: str | None = None) -> HTMLResponse:
        meeting = sandbox.state.live_room(room_name)
        if meeting is None:
            body = (
                "<h1>No such room</h1><section><p>This room does not exist or has ended.</p>"
                "<p><a href='/'>All meetings</a></p></section>"
            )
            return HTMLResponse(_page("No such room", body), status_code=404)
        return HTMLResponse(room_page(sandbox, meeting, roomKey))

    return router
