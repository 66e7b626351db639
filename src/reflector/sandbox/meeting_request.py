"""Validation of `POST /meetings` bodies, with the rules of the Whereby guide.

Unknown fields are ignored; the `recording` block is checked leniently (only `type` and
`startTrigger` values, and that the destination's values are strings)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reflector.sandbox.errors import bad_request
from reflector.sandbox.times import parse_iso

ROOM_MODES = frozenset({"normal", "group"})
ROOM_NAME_PATTERNS = frozenset({"uuid", "human-short"})
EXTRA_FIELDS = frozenset({"hostRoomUrl", "viewerRoomUrl"})
TEMPLATE_TYPES = frozenset({"viewerMode"})
RECORDING_TYPES = frozenset({"none", "local", "cloud"})
START_TRIGGERS = frozenset({"none", "prompt", "automatic", "automatic-2nd-participant"})
FILE_FORMATS = frozenset({"mp4", "mkv"})
_PREFIX = re.compile(r"[a-z0-9-]{0,39}")
_DESTINATION_KEYS = {
    "provider": "provider",
    "bucket": "bucket",
    "accessKeyId": "access_key_id",
    "accessKeySecret": "access_key_secret",
    "fileFormat": "file_format",
    "authenticationType": "authentication_type",
}


@dataclass(frozen=True)
class Destination:
    provider: str | None = None
    bucket: str | None = None
    access_key_id: str | None = None
    access_key_secret: str | None = None
    file_format: str | None = None
    authentication_type: str | None = None

    @property
    def bucket_name(self) -> str | None:
        """The bucket alone, without a sub-folder."""
        return self.bucket.split("/", 1)[0] if self.bucket else None

    @property
    def folder(self) -> str:
        """The sub-folder of `bucket` (`my-bucket/recordings` -> `recordings`), or ""."""
        if not self.bucket or "/" not in self.bucket:
            return ""
        return self.bucket.split("/", 1)[1].strip("/")

    @property
    def extension(self) -> str:
        # An unknown format is not rejected (the block is lenient); it records as mp4.
        return "mkv" if self.file_format == "mkv" else "mp4"


@dataclass(frozen=True)
class RecordingSpec:
    type: str = "none"
    start_trigger: str = "none"
    destination: Destination | None = None

    @property
    def cloud(self) -> bool:
        return self.type == "cloud"


@dataclass(frozen=True)
class MeetingRequest:
    end_date: datetime
    is_locked: bool = False
    room_mode: str = "normal"
    room_name_prefix: str = ""
    room_name_pattern: str = "uuid"
    fields: frozenset[str] = frozenset()
    template_type: str | None = None
    recording: RecordingSpec = RecordingSpec()


def _choice(body: dict[str, Any], key: str, allowed: frozenset[str], default: str) -> str:
    value = body.get(key, default)
    if value not in allowed:
        raise bad_request(f'"{key}" must be one of {", ".join(sorted(allowed))} (got {value!r})')
    return str(value)


def parse_meeting_request(body: Any, now: datetime) -> MeetingRequest:
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    end_text = body.get("endDate")
    if end_text is None:
        raise bad_request('"endDate" is required')
    if not isinstance(end_text, str):
        raise bad_request('"endDate" must be an ISO-8601 date string')
    try:
        end_date = parse_iso(end_text)
    except ValueError:
        raise bad_request(f'"endDate" must be an ISO-8601 date (got {end_text!r})') from None
    if end_date < now:
        raise bad_request('"endDate" must not be in the past')

    is_locked = body.get("isLocked", False)
    if not isinstance(is_locked, bool):
        raise bad_request('"isLocked" must be a boolean')

    prefix = body.get("roomNamePrefix", "")
    if prefix is None:
        prefix = ""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise bad_request(
            '"roomNamePrefix" must be at most 39 lower-case letters, digits or dashes '
            f"(got {prefix!r})"
        )

    fields = body.get("fields", [])
    if not isinstance(fields, list) or any(f not in EXTRA_FIELDS for f in fields):
        raise bad_request(f'"fields" must be a list of {", ".join(sorted(EXTRA_FIELDS))}')

    template_type = body.get("templateType")
    if template_type is not None and template_type not in TEMPLATE_TYPES:
        raise bad_request(f'"templateType" must be viewerMode (got {template_type!r})')

    return MeetingRequest(
        end_date=end_date,
        is_locked=is_locked,
        room_mode=_choice(body, "roomMode", ROOM_MODES, "normal"),
        room_name_prefix=prefix,
        room_name_pattern=_choice(body, "roomNamePattern", ROOM_NAME_PATTERNS, "uuid"),
        fields=frozenset(fields),
        template_type=template_type,
        recording=_parse_recording(body.get("recording")),
    )


def _parse_recording(block: Any) -> RecordingSpec:
    if block is None:
        return RecordingSpec()
    if not isinstance(block, dict):
        raise bad_request('"recording" must be an object')
    kind = _choice(block, "type", RECORDING_TYPES, "none")
    trigger = block.get("startTrigger")
    if trigger is None:
        trigger = "none"
    if trigger not in START_TRIGGERS:
        raise bad_request(
            f'"recording.startTrigger" must be one of {", ".join(sorted(START_TRIGGERS))} '
            f"(got {trigger!r})"
        )
    raw = block.get("destination")
    destination: Destination | None = None
    if raw is not None:
        if not isinstance(raw, dict):
            raise bad_request('"recording.destination" must be an object')
        values: dict[str, str | None] = {}
        for key, attribute in _DESTINATION_KEYS.items():
            value = raw.get(key)
            if value is not None and not isinstance(value, str):
                raise bad_request(f'"recording.destination.{key}" must be a string')
            values[attribute] = value
        destination = Destination(**values)
    return RecordingSpec(type=kind, start_trigger=str(trigger), destination=destination)
