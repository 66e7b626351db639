"""Whereby's names for cloud recordings in the customer's bucket, both ways.

Object key: the room name without its leading slash, "-", the recording's UTC start time to the
second, the extension; under the bucket's sub-folder when it has one. Example:
`standup-0b1fbe30-2346-4681-85a5-f309f11e509f-2023-10-31T13:09:35Z.mp4`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

EXTENSIONS = ("mp4", "mkv", "webm")
_NAME = re.compile(
    r"^(?P<room>[a-z0-9][a-z0-9-]*?)-(?P<start>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"
    r"\.(?P<ext>" + "|".join(EXTENSIONS) + r")$"
)


@dataclass(frozen=True)
class RecordingName:
    room_name: str  # with the leading slash, as in webhooks and the meetings table
    started_at: datetime
    extension: str


def parse_key(key: str) -> RecordingName | None:
    """The room and start time a recording's object key names, or None when it is not a
    Whereby recording name (another file in the bucket)."""
    match = _NAME.match(key.rsplit("/", 1)[-1])
    if match is None:
        return None
    try:
        started = datetime.strptime(match["start"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return RecordingName("/" + match["room"], started, match["ext"])


def is_recording_key(key: str) -> bool:
    return parse_key(key) is not None


def object_key(
    room_name: str, started_at: datetime, extension: str = "mp4", folder: str = ""
) -> str:
    """The key Whereby writes a recording under (the inverse of parse_key)."""
    stamp = started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    prefix = folder.strip("/") + "/" if folder.strip("/") else ""
    return f"{prefix}{room_name.lstrip('/')}-{stamp}.{extension}"
