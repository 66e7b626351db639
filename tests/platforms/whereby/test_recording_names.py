from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reflector.platforms.whereby.recordings import object_key, parse_key

ROOM = "/standup-0b1fbe30-2346-4681-85a5-f309f11e509f"


@pytest.mark.parametrize(
    ("key", "room", "start"),
    [
        (
            "standup-0b1fbe30-2346-4681-85a5-f309f11e509f-2023-10-31T13:09:35Z.mp4",
            ROOM,
            datetime(2023, 10, 31, 13, 9, 35, tzinfo=UTC),
        ),
        (
            "recordings/team/standup-0b1fbe30-2346-4681-85a5-f309f11e509f-2023-10-31T13:09:35Z.mkv",
            ROOM,
            datetime(2023, 10, 31, 13, 9, 35, tzinfo=UTC),
        ),
        ("a-2026-01-02T03:04:05Z.mp4", "/a", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        # A room name that itself ends in something date-like keeps it.
        (
            "x-2020-01-01-2026-01-02T03:04:05Z.mp4",
            "/x-2020-01-01",
            datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        ),
    ],
)
def test_parse(key: str, room: str, start: datetime) -> None:
    parsed = parse_key(key)
    assert parsed is not None
    assert parsed.room_name == room
    assert parsed.started_at == start


@pytest.mark.parametrize(
    "key",
    [
        "notes.txt",
        "standup.mp4",
        "standup-2023-10-31T13:09:35Z.mov",
        "standup-2023-10-31T13:09:35.mp4",
        "standup-2023-13-31T13:09:35Z.mp4",
        "Standup-2023-10-31T13:09:35Z.mp4",
        "-2023-10-31T13:09:35Z.mp4",
        "folder/",
        "",
    ],
)
def test_not_recordings(key: str) -> None:
    assert parse_key(key) is None


def test_object_key_round_trip() -> None:
    start = datetime(2023, 10, 31, 13, 9, 35, 900_000, tzinfo=UTC)
    key = object_key(ROOM, start, folder="/recordings/")
    assert key == "recordings/standup-0b1fbe30-2346-4681-85a5-f309f11e509f-2023-10-31T13:09:35Z.mp4"
    parsed = parse_key(key)
    assert parsed is not None
    assert parsed.room_name == ROOM
    assert parsed.started_at == start.replace(microsecond=0)
