"""Topics from the offline backend on a scripted meeting (budget, then hiring, then the launch
date), the boundary search on synthetic embeddings, and the repair both backends rely on.

The scripted meeting lives here; test_summarize and test_llm import it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from reflector.pipeline.offline_text import OfflineAnalyzer
from reflector.pipeline.text_chunks import split_sentences
from reflector.pipeline.topics import TilingParams, TopicDraft, find_boundaries, tile_topics
from reflector.pipeline.types import Segment, Speaker, Topic

ALICE, BOB, CAROL = 0, 1, 2
SPEAKERS = [Speaker(id=0, name="Alice"), Speaker(id=1, name="Bob"), Speaker(id=2, name="Carol")]

BUDGET = [
    (CAROL, "Okay, let's get started. First item is the budget for next quarter."),
    (
        BOB,
        "Right. So the short version is that we spent most of the marketing budget in the first "
        "two months, mostly on the conference booth and the paid ads.",
    ),
    (CAROL, "How much is left for the rest of the quarter?"),
    (
        BOB,
        "About forty thousand dollars out of the one hundred and twenty thousand we planned. The "
        "cloud hosting bill also went up, it almost doubled since we moved the analytics jobs to "
        "the bigger database cluster.",
    ),
    (
        ALICE,
        "The hosting costs should come down once we switch off the old cluster. I think that "
        "saves around eight thousand dollars a month.",
    ),
    (
        BOB,
        "That helps. I would still cut the travel budget by twenty percent and freeze new "
        "software subscriptions until the end of the quarter.",
    ),
    (
        CAROL,
        "I agree with cutting travel. Finance wants a revised budget spreadsheet with the new "
        "numbers before the board meeting.",
    ),
    (BOB, "I'll update the budget spreadsheet with the hosting savings and the travel cut."),
    (
        ALICE,
        "Can you also split the spending by team in the spreadsheet? The board always asks "
        "which team spent what.",
    ),
    (BOB, "Sure, I can break the costs down by team."),
]

HIRING = [
    (
        CAROL,
        "Good. Next topic is hiring. We have two open positions for backend engineers and one "
        "for a product designer.",
    ),
    (
        ALICE,
        "We interviewed five candidates for the backend roles last week. Two of them were "
        "strong, especially the one with the distributed systems background.",
    ),
    (CAROL, "Did we send offers yet?"),
    (
        ALICE,
        "Not yet. The recruiter is waiting for the salary bands from human resources, and the "
        "candidates have competing offers, so we need to move quickly.",
    ),
    (
        BOB,
        "For the designer role we still have no good applicants. Maybe we should post the job "
        "on design communities and ask for referrals from the team.",
    ),
    (
        CAROL,
        "Referrals worked well last year. We could raise the referral bonus for the design "
        "position.",
    ),
    (
        ALICE,
        "The interview process is also too long. Candidates do four rounds of interviews and a "
        "take home exercise, we could drop one round.",
    ),
    (
        CAROL,
        "Let's cut it to three interview rounds for engineers. Alice, can you send the report "
        "on the interview feedback to the recruiter by Friday?",
    ),
    (ALICE, "Yes, I will send the interview report to the recruiter by Friday."),
]

LAUNCH = [
    (CAROL, "Last item, the launch date for the new mobile app."),
    (
        BOB,
        "Marketing would like to launch on the fifteenth of March, right before the spring "
        "campaign.",
    ),
    (
        ALICE,
        "That is tight. The app store review usually takes a week, and we still have open bugs "
        "in the payment screen and the offline sync.",
    ),
    (CAROL, "How many release blockers are left?"),
    (
        ALICE,
        "Three release blockers. The crash on older Android phones, the login timeout, and the "
        "broken push notifications.",
    ),
    (
        BOB,
        "If we submit the beta to the app store by the first of March, we could still make the "
        "fifteenth for the public release.",
    ),
    (
        CAROL,
        "Then the plan is to freeze features next Monday and only fix the release blockers. "
        "I'll update the roadmap with the new launch date.",
    ),
    (
        ALICE,
        "We need to test the release candidate on real devices before we submit it to the app "
        "store.",
    ),
    (BOB, "I can organize a testing session with the support team on Thursday."),
    (CAROL, "Great. Thanks everyone, see you next week."),
]

Section = list[tuple[int, str]]


def build_meeting(
    sections: tuple[Section, ...] = (BUDGET, HIRING, LAUNCH),
    *,
    words_per_second: float = 2.4,
    pause: float = 0.6,
    start: float = 3.0,
) -> tuple[list[Segment], list[float]]:
    """Segments timed at a speaking pace, and the times where each section after the first
    begins."""
    segments: list[Segment] = []
    boundaries: list[float] = []
    t = start
    for i, section in enumerate(sections):
        if i:
            boundaries.append(t)
        for speaker, text in section:
            duration = len(text.split()) / words_per_second
            segments.append(
                Segment(speaker=speaker, start=round(t, 2), end=round(t + duration, 2), text=text)
            )
            t += duration + pause
    return segments, boundaries


def long_meeting(count: int = 2_000) -> list[Segment]:
    """`count` one-sentence segments (about 2 h 20 min) cycling through the three sections."""
    sentences = [
        (speaker, sentence.text)
        for section in (BUDGET, HIRING, LAUNCH)
        for speaker, text in section
        for sentence in split_sentences([Segment(speaker=speaker, start=0, end=1, text=text)])
    ]
    segments = []
    t = 0.0
    for i in range(count):
        speaker, text = sentences[i % len(sentences)]
        duration = len(text.split()) / 2.4
        segments.append(Segment(speaker=speaker, start=t, end=t + duration, text=text))
        t += duration + 0.5
    return segments


@pytest.fixture(scope="session")
def offline() -> OfflineAnalyzer:
    return OfflineAnalyzer()


@pytest.fixture(scope="module")
def meeting_topics(offline: OfflineAnalyzer) -> list[Topic]:
    segments, _ = build_meeting()
    return offline.topics(segments, SPEAKERS, progress=lambda _f: None)


def assert_tiles(topics: list[Topic], segments: list[Segment]) -> None:
    assert topics[0].start == segments[0].start
    assert topics[-1].end == max(s.end for s in segments)
    for before, after in itertools.pairwise(topics):
        assert before.end == after.start
        assert before.start < before.end


def test_topics_follow_the_agenda(meeting_topics: list[Topic]) -> None:
    segments, boundaries = build_meeting()
    assert len(meeting_topics) == 3
    assert_tiles(meeting_topics, segments)
    for topic, truth in zip(meeting_topics[1:], boundaries, strict=True):
        assert abs(topic.start - truth) < 10, (topic.start, truth)


def test_titles_name_the_subject_not_the_speakers(meeting_topics: list[Topic]) -> None:
    expected = [{"budget"}, {"hiring", "interview", "candidates", "recruiter"}, {"launch", "app"}]
    for topic, wanted in zip(meeting_topics, expected, strict=True):
        title = topic.title.lower()
        assert any(word in title for word in wanted), topic.title
        assert not topic.title.endswith(".")
        assert len(topic.title) <= 50
        assert not {"alice", "bob", "carol"} & set(title.replace(",", " ").split())


def test_topic_summaries_are_sentences_said_in_the_topic(meeting_topics: list[Topic]) -> None:
    segments, _ = build_meeting()
    for topic in meeting_topics:
        said = " ".join(s.text for s in segments if topic.start - 1 <= s.start < topic.end)
        sentences = split_sentences([Segment(speaker=0, start=0, end=1, text=topic.summary)])
        assert 1 <= len(sentences) <= 3, topic.summary
        for sentence in sentences:
            assert sentence.text.rstrip(".").lower() in said.lower(), sentence.text


def test_no_speech_no_topics(offline: OfflineAnalyzer) -> None:
    assert offline.topics([], SPEAKERS, progress=lambda _f: None) == []
    silent = [
        Segment(speaker=0, start=0, end=2, text="  "),
        Segment(speaker=1, start=2, end=3, text="..."),
    ]
    assert offline.topics(silent, SPEAKERS, progress=lambda _f: None) == []


def test_a_short_recording_is_one_topic(offline: OfflineAnalyzer) -> None:
    segments = [
        Segment(speaker=0, start=1.5, end=4.0, text="Hello, this is a quick test of the recorder."),
        Segment(speaker=1, start=4.2, end=6.0, text="It works."),
    ]
    [topic] = offline.topics(segments, SPEAKERS, progress=lambda _f: None)
    assert (topic.start, topic.end) == (1.5, 6.0)
    assert topic.title
    assert topic.summary


def test_order_of_input_does_not_matter_and_output_is_deterministic(
    offline: OfflineAnalyzer, meeting_topics: list[Topic]
) -> None:
    segments, _ = build_meeting()
    shuffled = segments[::2] + segments[1::2]
    assert offline.topics(shuffled, SPEAKERS, progress=lambda _f: None) == meeting_topics


def test_progress_rises_to_one(offline: OfflineAnalyzer) -> None:
    segments, _ = build_meeting()
    seen: list[float] = []
    offline.topics(segments, SPEAKERS, progress=seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == 1.0


# --- the boundary search on its own ---------------------------------------------------------


def _clustered(sizes: list[int], dim: int = 16, seed: int = 7) -> np.ndarray:
    """Unit vectors in clusters, one cluster per topic, with noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for size in sizes:
        centre = rng.normal(size=dim)
        rows.append(centre + 0.6 * rng.normal(size=(size, dim)))
    vectors = np.vstack(rows)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_boundaries_fall_where_the_vectors_change() -> None:
    sizes = [40, 30, 50]
    vectors = _clustered(sizes)
    starts = [i * 5.0 for i in range(sum(sizes))]  # a 12-word sentence every 5 s
    cuts = find_boundaries(vectors, [12] * len(starts), starts, starts[-1] + 5)
    assert cuts == [40, 70]


def test_no_boundaries_in_one_long_topic_beyond_noise() -> None:
    vectors = _clustered([120])
    starts = [i * 5.0 for i in range(120)]
    cuts = find_boundaries(vectors, [12] * 120, starts, 600.0)
    # Noise may produce a dip or two, but never a cut every few sentences.
    assert len(cuts) <= 2


def test_topics_respect_the_minimum_length_and_the_cap() -> None:
    vectors = _clustered([8] * 15)  # a new "topic" every 40 s
    starts = [i * 5.0 for i in range(120)]
    params = TilingParams(min_topic_s=60.0, seconds_per_topic=150.0)
    cuts = find_boundaries(vectors, [12] * 120, starts, 600.0, params)
    times = [0.0, *(starts[c] for c in cuts), 600.0]
    assert all(b - a >= 60.0 for a, b in itertools.pairwise(times))
    assert len(cuts) + 1 <= 1 + 600 // 150


# --- repair ---------------------------------------------------------------------------------


def test_tile_topics_orders_clamps_and_closes_gaps() -> None:
    drafts = [
        TopicDraft(start=300.0, title="Launch", summary="Dates."),
        TopicDraft(start=-5.0, title="Budget", summary="Money."),
        TopicDraft(start=120.0, title="Hiring", summary="People."),
        TopicDraft(start=120.0, title="Hiring again", summary="More people."),
        TopicDraft(start=999.0, title="After the end", summary="Nothing."),
    ]
    topics = tile_topics(drafts, 10.0, 400.0)
    assert [(t.title, t.start, t.end) for t in topics] == [
        ("Budget", 10.0, 120.0),
        ("Hiring", 120.0, 300.0),
        ("Launch", 300.0, 400.0),
    ]
    assert topics[1].summary == "People. More people."
    assert topics[2].summary == "Dates. Nothing."


def test_tile_topics_of_nothing_is_nothing() -> None:
    assert tile_topics([], 0.0, 10.0) == []
