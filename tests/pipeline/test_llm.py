"""The LLM backend against a scripted OpenAI-compatible server on loopback: valid answers,
invalid ones retried with a complaint, giving up to the offline backend, timeouts, refused
`response_format`, errors that are not retried, and chunking of long transcripts."""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Iterator

import pytest

from reflector.pipeline.llm import LLMAnalyzer
from reflector.pipeline.offline_text import OfflineAnalyzer
from reflector.pipeline.text_chunks import format_time
from reflector.pipeline.types import Segment, Topic
from tests.pipeline.llm_server import ChatRequest, FakeLLMServer, Reply
from tests.pipeline.test_topics import SPEAKERS, build_meeting

MODEL = "test-model"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    fake = FakeLLMServer()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def llm(server: FakeLLMServer) -> FakeLLMServer:
    server.reset()
    return server


@pytest.fixture(scope="session")
def offline() -> OfflineAnalyzer:
    return OfflineAnalyzer()


def analyzer(
    server: FakeLLMServer,
    offline: OfflineAnalyzer,
    *,
    timeout_s: float = 5.0,
    max_retries: int = 2,
    chunk_chars: int = 12_000,
) -> LLMAnalyzer:
    return LLMAnalyzer(
        server.base_url,
        "secret-key",
        MODEL,
        timeout_s=timeout_s,
        max_retries=max_retries,
        chunk_chars=chunk_chars,
        fallback=offline,
        backoff_s=0.0,
    )


def topics_reply(request: ChatRequest) -> Reply:
    """Up to three topics per transcript chunk, starting at evenly spaced lines."""
    times = request.line_times()
    starts = sorted({times[0], times[len(times) // 3], times[2 * len(times) // 3]})
    return Reply.json(
        {
            "topics": [
                {
                    "start": format_time(t),
                    "title": f"Subject at {format_time(t)}.",
                    "summary": f"What was said from {format_time(t)} on, in one sentence.",
                }
                for t in starts
            ]
        }
    )


SUMMARY = {
    "title": "Budget, hiring and the app launch.",
    "short_summary": "The team reviewed the budget,\nthe open positions and the launch date.",
    "long_summary": "## Key points\n\n- Travel is cut by 20%.\n- Launch stays on March 15.",
    "action_items": [
        {"text": "Send the interview report to the recruiter", "owner": "alice", "start": "02:33"},
        {"text": "Update the roadmap", "owner": "Carol", "start": 215.9},
        {"text": "Book a testing session", "owner": "null", "start": "99:00"},
        {"text": "Update the roadmap", "owner": "Carol", "start": 216},
    ],
}


def summary_reply(request: ChatRequest) -> Reply:
    if request.kind == "action_items":
        times = request.line_times()
        return Reply.json(
            {"action_items": [{"text": f"Task from {format_time(times[0])}", "owner": "Bob"}]}
        )
    if request.kind == "section":
        return Reply.json({"title": "A section", "summary": "Several topics, merged."})
    return Reply.json(SUMMARY)


def chat(request: ChatRequest) -> Reply:
    return topics_reply(request) if request.kind == "topics" else summary_reply(request)


def assert_tiles(topics: list[Topic], segments: list[Segment]) -> None:
    assert topics[0].start == segments[0].start
    assert topics[-1].end == max(s.end for s in segments)
    for before, after in itertools.pairwise(topics):
        assert before.end == after.start
        assert before.start < before.end


# --- valid answers --------------------------------------------------------------------------


def test_valid_answers_give_topics_and_a_summary(
    llm: FakeLLMServer, offline: OfflineAnalyzer
) -> None:
    segments, _ = build_meeting()
    llm.always(chat)
    backend = analyzer(llm, offline)
    topics = backend.topics(segments, SPEAKERS, progress=lambda _f: None)
    summary = backend.summarize(segments, SPEAKERS, topics, progress=lambda _f: None)

    assert len(topics) == 3
    assert_tiles(topics, segments)
    starts = {s.start for s in segments}
    assert all(t.start in starts for t in topics)  # snapped to the lines' real times
    assert topics[0].title == "Subject at 00:03"  # trailing period removed

    first = llm.requests[0]
    assert first.body["model"] == MODEL
    assert first.body["response_format"] == {"type": "json_object"}
    assert first.headers["authorization"] == "Bearer secret-key"
    assert "Participants: Alice, Bob, Carol" in first.prompt
    assert "[00:03] Carol: Okay, let's get started." in (first.transcript or "")
    assert "JSON" in first.prompt

    assert summary.backend == f"llm:{MODEL}"
    assert summary.title == "Budget, hiring and the app launch"
    assert summary.short_summary == (
        "The team reviewed the budget, the open positions and the launch date."
    )
    assert summary.long_summary.startswith("## Overview\n\n### Key points\n")
    assert "\n## Topics\n" in summary.long_summary
    assert [(i.text, i.owner, i.start) for i in summary.action_items] == [
        ("Send the interview report to the recruiter", "Alice", 153.0),
        ("Update the roadmap", "Carol", 215.9),
        ("Book a testing session", None, segments[-1].end),
    ]
    assert len(llm.requests) == 2  # one for topics, one for the summary


def test_no_speech_asks_nothing(llm: FakeLLMServer, offline: OfflineAnalyzer) -> None:
    backend = analyzer(llm, offline)
    assert backend.topics([], SPEAKERS, progress=lambda _f: None) == []
    summary = backend.summarize([], SPEAKERS, [], progress=lambda _f: None)
    assert summary.title == "Untitled recording"
    assert llm.requests == []


def test_times_out_of_range_or_order_are_repaired(
    llm: FakeLLMServer, offline: OfflineAnalyzer
) -> None:
    segments, _ = build_meeting()
    llm.script(
        Reply.json(
            {
                "topics": [
                    {"start": "02:46", "title": "Launch", "summary": "Dates."},
                    {"start": 0, "title": "Budget", "summary": "Money."},
                    {"start": "99:00", "title": "Beyond the end", "summary": "Nothing."},
                    {"start": "[01:29]", "title": "Hiring", "summary": "People."},
                ]
            }
        )
    )
    topics = analyzer(llm, offline).topics(segments, SPEAKERS, progress=lambda _f: None)
    assert [t.title for t in topics] == ["Budget", "Hiring", "Launch"]
    assert_tiles(topics, segments)
    assert topics[2].summary == "Dates. Nothing."


# --- invalid answers ------------------------------------------------------------------------


def test_invalid_json_is_retried_with_the_reason(
    llm: FakeLLMServer, offline: OfflineAnalyzer
) -> None:
    segments, _ = build_meeting()
    llm.script(Reply('Sure! Here are the topics: {"topics": [{"start": "00:03",'), topics_reply)
    topics = analyzer(llm, offline).topics(segments, SPEAKERS, progress=lambda _f: None)
    assert [t.title for t in topics][:1] == ["Subject at 00:03"]
    retry = llm.requests[1]
    assert [m["role"] for m in retry.messages] == ["system", "user", "assistant", "user"]
    assert retry.messages[2]["content"].startswith("Sure! Here are the topics")
    assert "not valid JSON" in retry.last_user


def test_a_reply_of_the_wrong_shape_is_retried_with_the_fields_named(
    llm: FakeLLMServer, offline: OfflineAnalyzer
) -> None:
    segments, _ = build_meeting()
    llm.script(
        Reply.json({"topics": [{"title": "Budget", "start": "soon"}]}),
        topics_reply,
    )
    topics = analyzer(llm, offline).topics(segments, SPEAKERS, progress=lambda _f: None)
    assert len(topics) == 3
    complaint = llm.requests[1].last_user
    assert "topics.0.start" in complaint
    assert "topics.0.summary" in complaint


def test_always_invalid_falls_back_to_offline_after_the_retries(
    llm: FakeLLMServer, offline: OfflineAnalyzer
) -> None:
    segments, _ = build_meeting()
    llm.always(Reply("I am sorry, I cannot help with that."))
    backend = analyzer(llm, offline, max_retries=2)

    topics = backend.topics(segments, SPEAKERS, progress=lambda _f: None)
    assert len(llm.requests) == 3
    assert topics == offline.topics(segments, SPEAKERS, progress=lambda _f: None)

    summary = backend.summarize(segments, SPEAKERS, topics, progress=lambda _f: None)
    assert len(llm.requests) == 6
    assert summary.backend.startswith("offline (LLM fallback: invalid reply: ")
    assert summary.backend.endswith("; gave up after 3 attempts)")
    expected = offline.summarize(segments, SPEAKERS, topics, progress=lambda _f: None)
    assert summary.title == expected.title
    assert summary.action_items == expected.action_items


# --- transport ------------------------------------------------------------------------------


def test_a_slow_server_is_retried_then_the_offline_backend_answers(
    llm: FakeLLMServer, offline: OfflineAnalyzer
) -> None:
    segments, _ = build_meeting()
    llm.always(Reply(json.dumps(SUMMARY), delay=1.5))
    backend = analyzer(llm, offline, timeout_s=0.3, max_retries=1)
    topics = offline.topics(segments, SPEAKERS, progress=lambda _f: None)
    began = time.monotonic()
    summary = backend.summarize(segments, SPEAKERS, topics, progress=lambda _f: None)
    assert time.monotonic() - began < 1.5
    assert len(llm.requests) == 2
    assert summary.backend == (
        "offline (LLM fallback: timed out after 0.3 s; gave up after 2 attempts)"
    )


def test_server_errors_are_retried(llm: FakeLLMServer, offline: OfflineAnalyzer) -> None:
    segments, _ = build_meeting()
    llm.script(
        Reply(status=503, body=b'{"error": "loading model"}', headers={"Retry-After": "0"}),
        topics_reply,
    )
    topics = analyzer(llm, offline).topics(segments, SPEAKERS, progress=lambda _f: None)
    assert topics[0].title == "Subject at 00:03"
    assert len(llm.requests) == 2


def test_a_client_error_is_not_retried(llm: FakeLLMServer, offline: OfflineAnalyzer) -> None:
    segments, _ = build_meeting()
    llm.always(Reply(status=401, body=b'{"error": "invalid api key"}'))
    backend = analyzer(llm, offline)
    summary = backend.summarize(
        segments,
        SPEAKERS,
        offline.topics(segments, SPEAKERS, progress=lambda _f: None),
        progress=lambda _f: None,
    )
    assert len(llm.requests) == 1
    assert summary.backend.startswith("offline (LLM fallback: HTTP 401: ")


def test_no_server_at_all(offline: OfflineAnalyzer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    segments, _ = build_meeting()
    backend = LLMAnalyzer(
        f"http://127.0.0.1:{port}/v1", None, MODEL, 2.0, 1, 12_000, offline, backoff_s=0.0
    )
    summary = backend.summarize(segments, SPEAKERS, [], progress=lambda _f: None)
    assert summary.backend.startswith("offline (LLM fallback: cannot reach the LLM server")
    assert (
        summary.title == offline.summarize(segments, SPEAKERS, [], progress=lambda _f: None).title
    )


def test_a_server_without_json_mode_is_asked_without_it(
    llm: FakeLLMServer, offline: OfflineAnalyzer
) -> None:
    def strict(request: ChatRequest) -> Reply:
        if "response_format" in request.body:
            return Reply(status=400, body=b'{"error": "unknown field: response_format"}')
        return chat(request)

    segments, _ = build_meeting()
    llm.always(strict)
    backend = analyzer(llm, offline)
    topics = backend.topics(segments, SPEAKERS, progress=lambda _f: None)
    backend.summarize(segments, SPEAKERS, topics, progress=lambda _f: None)
    assert ["response_format" in r.body for r in llm.requests] == [True, False, False]


# --- chunking -------------------------------------------------------------------------------


def test_a_long_transcript_goes_in_chunks_and_nothing_is_dropped(
    llm: FakeLLMServer, offline: OfflineAnalyzer
) -> None:
    segments, _ = build_meeting()
    llm.always(chat)
    backend = analyzer(llm, offline, chunk_chars=1_000)
    seen: list[float] = []
    topics = backend.topics(segments, SPEAKERS, progress=seen.append)
    topic_requests = [r for r in llm.requests if r.kind == "topics"]
    assert len(topic_requests) >= 4
    transcripts = [r.transcript or "" for r in topic_requests]
    assert all(len(t) <= 1_000 for t in transcripts)
    joined = "\n".join(transcripts)
    for segment in segments:
        assert segment.text in joined
    assert "part 1 of" in topic_requests[0].prompt
    assert_tiles(topics, segments)
    assert len(topics) > 3
    assert seen[-1] == 1.0

    llm.reset()
    llm.always(chat)
    summary = backend.summarize(segments, SPEAKERS, topics, progress=lambda _f: None)
    kinds = [r.kind for r in llm.requests]
    assert kinds.count("action_items") == len(topic_requests)
    assert kinds[-1] == "summary"
    final = llm.requests[-1]
    assert final.transcript is None  # reduce: from the topic (or section) summaries only
    assert all(len(r.transcript or "") <= 1_000 for r in llm.requests)
    assert summary.backend == f"llm:{MODEL}"
    assert {i.owner for i in summary.action_items} == {"Bob"}
    assert len(summary.action_items) == len(topic_requests)


def test_one_huge_turn_is_split_not_truncated(llm: FakeLLMServer, offline: OfflineAnalyzer) -> None:
    words = [f"word{i}" for i in range(900)]
    monologue = " ".join(words)  # no punctuation at all: about 7,000 characters
    segments = [Segment(speaker=0, start=0.0, end=400.0, text=monologue)]
    llm.always(chat)
    topics = analyzer(llm, offline, chunk_chars=1_000).topics(
        segments, SPEAKERS, progress=lambda _f: None
    )
    transcripts = [r.transcript or "" for r in llm.requests]
    assert len(transcripts) >= 7
    assert all(len(t) <= 1_000 for t in transcripts)
    said = [w for t in transcripts for line in t.splitlines() for w in line.split()[2:]]
    assert said == words
    assert_tiles(topics, segments)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="chunk_chars"):
        LLMAnalyzer("http://127.0.0.1:1/v1", None, MODEL, chunk_chars=10)
