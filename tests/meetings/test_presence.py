"""Presence intervals read back from join/leave events, relative to a recording's start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reflector.meetings.presence import _Change, _intervals, people_count

ORIGIN = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return ORIGIN + timedelta(seconds=seconds)


def change(seconds: float, joined: bool, pid: str, name: str) -> _Change:
    return _Change(at(seconds), joined, pid, name)


def spans(changes: list[_Change]) -> list[tuple[str, str, float, float | None]]:
    return [(i.participant_id, i.name, i.start, i.end) for i in _intervals(changes, ORIGIN)]


def test_any_delivery_order_gives_the_same_intervals() -> None:
    events = [
        change(-10, True, "a", "Ada"),
        change(30, False, "a", "Ada"),
        change(40, True, "a", "Ada"),
        change(5, True, "b", "Ben"),
    ]
    expected = [("a", "Ada", -10.0, 30.0), ("b", "Ben", 5.0, None), ("a", "Ada", 40.0, None)]
    assert spans(events) == expected
    assert spans(list(reversed(events))) == expected


def test_a_reconnect_under_a_new_id_is_one_person() -> None:
    events = [
        change(0, True, "a1", "Ada"),
        change(10, False, "a1", "Ada"),
        change(11, True, "a2", "Ada"),
    ]
    result = _intervals(events, ORIGIN)
    assert {i.participant_id for i in result} == {"a1"}
    assert people_count(result) == 1


def test_two_people_with_one_name_at_once_stay_two() -> None:
    events = [change(0, True, "x1", "Alex"), change(1, True, "x2", "Alex")]
    result = _intervals(events, ORIGIN)
    assert {i.participant_id for i in result} == {"x1", "x2"}
    assert people_count(result) == 2


def test_what_ended_before_the_recording_and_unmatched_leaves_are_left_out() -> None:
    events = [
        change(-60, True, "a", "Ada"),
        change(-30, False, "a", "Ada"),
        change(20, False, "b", "Ben"),  # its join was never seen: no interval to trust
        change(0, True, "c", ""),
    ]
    assert spans(events) == [("c", "", 0.0, None)]
    assert people_count([]) is None
