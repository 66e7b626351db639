"""Summaries from the offline backend: the scripted meeting's title, short and long summary and
action items with their owners; the cue-phrase rules one by one; empty input; a long meeting in
bounded time."""

from __future__ import annotations

import itertools
import time

import pytest

from reflector.pipeline.offline_text import OfflineAnalyzer, lexrank
from reflector.pipeline.summarize import (
    NO_SPEECH,
    UNTITLED,
    clean_title,
    find_action_items,
    render_long_summary,
)
from reflector.pipeline.text_chunks import Sentence, split_sentences
from reflector.pipeline.types import ActionItem, Segment, Speaker, Summary, Topic
from tests.pipeline.test_topics import SPEAKERS, build_meeting, long_meeting


@pytest.fixture(scope="session")
def offline() -> OfflineAnalyzer:
    return OfflineAnalyzer()


@pytest.fixture(scope="module")
def meeting(offline: OfflineAnalyzer) -> tuple[list[Topic], Summary]:
    segments, _ = build_meeting()
    topics = offline.topics(segments, SPEAKERS, progress=lambda _f: None)
    return topics, offline.summarize(segments, SPEAKERS, topics, progress=lambda _f: None)


def test_title_and_short_summary(meeting: tuple[list[Topic], Summary]) -> None:
    _, summary = meeting
    assert summary.backend == "offline"
    assert "budget" in summary.title.lower()
    assert not summary.title.endswith(".")
    assert len(summary.title) <= 80
    assert "\n" not in summary.short_summary
    assert summary.short_summary.startswith("Alice, Bob and Carol talked for 4 minutes about")


def test_long_summary_is_markdown_around_the_topics(meeting: tuple[list[Topic], Summary]) -> None:
    topics, summary = meeting
    text = summary.long_summary
    assert text.startswith("## Overview\n")
    assert "\n## Topics\n" in text
    assert "\n## Action items\n" in text
    for topic in topics:
        assert f"- **{topic.title}** (" in text


def _owned(summary: Summary) -> dict[str, str | None]:
    return {item.text.lower(): item.owner for item in summary.action_items}


def test_action_items_have_owners(meeting: tuple[list[Topic], Summary]) -> None:
    _, summary = meeting
    owners = _owned(summary)
    # "Alice, can you send the report ... by Friday?" names its owner.
    assert owners["send the report on the interview feedback to the recruiter by friday"] == "Alice"
    # "I'll update ..." is the speaker's own.
    assert owners["update the roadmap with the new launch date"] == "Carol"
    assert owners["update the budget spreadsheet with the hosting savings and the travel cut"] == (
        "Bob"
    )
    # "Can you also split ...?" answered "Sure, I can ..." by Bob.
    assert owners["split the spending by team in the spreadsheet"] == "Bob"
    # "We need to ..." is everyone's.
    assert (
        owners["test the release candidate on real devices before we submit it to the app store"]
        is None
    )
    # Alice's "Yes, I will send the interview report ..." answers the request: not listed twice.
    assert sum("interview" in text and "recruiter" in text for text in owners) == 1
    starts = [item.start for item in summary.action_items]
    assert all(s is not None for s in starts)
    assert starts == sorted(starts)  # type: ignore[type-var]


def test_summary_without_topics_finds_its_own(offline: OfflineAnalyzer) -> None:
    segments, _ = build_meeting()
    summary = offline.summarize(segments, SPEAKERS, [], progress=lambda _f: None)
    assert "## Topics" in summary.long_summary
    assert summary.title != UNTITLED


@pytest.mark.parametrize(
    "segments",
    [[], [Segment(speaker=0, start=0.0, end=3.0, text=" ")]],
    ids=["no segments", "no words"],
)
def test_no_speech_gives_an_honest_empty_summary(
    offline: OfflineAnalyzer, segments: list[Segment]
) -> None:
    summary = offline.summarize(segments, SPEAKERS, [], progress=lambda _f: None)
    assert summary.title == UNTITLED
    assert summary.short_summary == NO_SPEECH
    assert summary.action_items == []


def test_a_long_meeting_completes_in_bounded_time(offline: OfflineAnalyzer) -> None:
    segments = long_meeting(2_000)
    began = time.monotonic()
    topics = offline.topics(segments, SPEAKERS, progress=lambda _f: None)
    summary = offline.summarize(segments, SPEAKERS, topics, progress=lambda _f: None)
    took = time.monotonic() - began
    print(f"2000 segments ({segments[-1].end / 3600:.1f} h): {len(topics)} topics in {took:.1f} s")
    assert 2 <= len(topics) <= 30
    assert topics[0].start == segments[0].start
    assert topics[-1].end == segments[-1].end
    assert all(a.end == b.start for a, b in itertools.pairwise(topics))
    assert summary.title != UNTITLED
    assert len(summary.action_items) <= 50
    assert took < 120


# --- action item rules ----------------------------------------------------------------------


def _said(*lines: tuple[int, str]) -> list[Sentence]:
    segments = [
        Segment(speaker=speaker, start=10.0 * i, end=10.0 * i + 8, text=text)
        for i, (speaker, text) in enumerate(lines)
    ]
    return split_sentences(segments)


def _items(speakers: list[Speaker], *lines: tuple[int, str]) -> list[tuple[str, str | None]]:
    return [(i.text, i.owner) for i in find_action_items(_said(*lines), speakers)]


TEAM = [
    Speaker(id=0, name="Dana Scully"),
    Speaker(id=1, name="Fox Mulder"),
    Speaker(id=2, name="Walter"),
]


def test_a_named_request_belongs_to_the_person_named() -> None:
    assert _items(TEAM, (0, "Fox, could you please write up the incident notes?")) == [
        ("Write up the incident notes", "Fox Mulder")
    ]
    assert _items(TEAM, (2, "Can you book the room for Tuesday, Dana?")) == [
        ("Book the room for Tuesday", "Dana Scully")
    ]


def test_a_request_to_someone_not_present_has_no_owner() -> None:
    assert _items(TEAM, (0, "Skinner, can you sign the budget request?"), (1, "Hmm.")) == [
        ("Sign the budget request", None)
    ]


def test_with_two_people_a_request_is_for_the_other_one() -> None:
    two = TEAM[:2]
    assert _items(two, (0, "Could you send me the slides after the call?")) == [
        ("Send me the slides after the call", "Fox Mulder")
    ]


def test_a_commitment_belongs_to_the_speaker() -> None:
    assert _items(TEAM, (2, "Okay, I'm going to draft the press release tonight.")) == [
        ("Draft the press release tonight", "Walter")
    ]


def test_talk_about_the_meeting_is_not_work() -> None:
    assert (
        _items(
            TEAM,
            (0, "Let's move on to the next item."),
            (1, "I'll be honest, I did not read it."),
            (2, "Let me think about that for a second."),
            (0, "We need to go."),
        )
        == []
    )


def test_explicit_markers_and_deadlines() -> None:
    found = _items(
        TEAM,
        (0, "One action item is the security review of the new login page."),
        (1, "The vendor contract has to be signed by the end of the month."),
    )
    assert found == [
        ("One action item is the security review of the new login page", None),
        ("The vendor contract has to be signed by the end of the month", None),
    ]


def test_generic_speaker_names_still_own_commitments() -> None:
    anonymous = [Speaker(id=0, name="Speaker 1"), Speaker(id=1, name="Speaker 2")]
    assert _items(anonymous, (1, "I will send the invoice to the client tomorrow.")) == [
        ("Send the invoice to the client tomorrow", "Speaker 2")
    ]


# --- small pieces ---------------------------------------------------------------------------


def test_clean_title() -> None:
    assert clean_title('Title: "Quarterly budget review."') == "Quarterly budget review"
    assert clean_title("  ") == UNTITLED
    long = clean_title("word " * 40)
    assert len(long) <= 80
    assert not long.endswith(" ")


def test_long_summary_escapes_transcript_text() -> None:
    topic = Topic(title="Use <b>bold</b>", summary="5 * 3 = 15 # fact", start=0, end=10)
    item = ActionItem(text="Fix the [link]", owner="Bob", start=65.0)
    text = render_long_summary("An overview.", [topic], [item])
    assert "\\<b\\>bold\\</b\\>" in text
    assert "5 \\* 3 = 15 \\# fact" in text
    assert "- **Bob**: Fix the \\[link\\] (01:05)" in text


def test_lexrank_is_bounded_and_keeps_order() -> None:
    texts = [f"The budget line number {i} covers travel and hosting costs." for i in range(300)]
    texts[150] = "Completely different sentence about hiring designers."
    picked = lexrank(texts, 3)
    assert len(picked) == 3
    assert picked == sorted(picked)
    assert lexrank(texts[:2], 3) == [0, 1]
    assert lexrank([], 2) == []
