"""Full-text search over transcripts, on SQLite (FTS5) and PostgreSQL (tsvector): the index,
what may be found by whom, snippets safe as HTML, queries that cannot break, and the route."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.auth.models import User
from reflector.db.base import utcnow
from reflector.db.engine import create_session_factory
from reflector.pipeline.types import Segment, Speaker, Topic, TranscriptDocument
from reflector.transcripts.models import ShareMode, Transcript, TranscriptStatus
from reflector.transcripts.search import (
    ParsedQuery,
    SearchResults,
    drop_from_index,
    index_transcript,
    parse_query,
    search,
)
from tests.conftest import Account, MakeAccount

Line = tuple[int, float, float, str]  # speaker id, start, end, text


def document(
    title: str,
    lines: list[Line],
    *,
    topics: list[Topic] | None = None,
    short_summary: str = "",
    long_summary: str = "",
) -> TranscriptDocument:
    return TranscriptDocument(
        duration=max((end for _s, _b, end, _t in lines), default=0.0),
        language="en",
        title=title,
        short_summary=short_summary,
        long_summary=long_summary,
        action_items=[],
        topics=topics or [],
        speakers=[Speaker(id=0, name="Alice"), Speaker(id=1, name="Bob")],
        segments=[
            Segment(speaker=speaker, start=start, end=end, text=words)
            for speaker, start, end, words in lines
        ],
        words=[],
    )


PLANNING = document(
    "Kickoff planning",
    [
        (0, 0.0, 4.0, "Good morning everyone, thanks for joining."),
        (1, 12.5, 18.0, "The roadmap for the next quarter is ready."),
        (0, 18.0, 25.0, "We need to talk about the budget before we hire anyone."),
        (1, 25.0, 31.0, "Next week I will send the quarter numbers."),
    ],
    topics=[Topic(title="Hiring", summary="Two engineers join in spring.", start=40, end=90)],
    short_summary="The team agreed on the roadmap.",
    long_summary="## Decisions\n\n- **Budget** approved for the *hiring* plan.",
)


async def add_transcript(
    engine: AsyncEngine,
    owner: Account,
    doc: TranscriptDocument,
    *,
    share_mode: ShareMode = ShareMode.private,
    status: TranscriptStatus = TranscriptStatus.ended,
    created_at: datetime | None = None,
) -> str:
    """A transcript row as the pipeline leaves it, indexed in the same transaction."""
    async with create_session_factory(engine)() as session:
        transcript = Transcript(
            owner_id=owner.user_id,
            source="upload",
            status=status.value,
            share_mode=share_mode.value,
            steps={},
            storage_prefix="transcripts/test",
            title=doc.title,
            short_summary=doc.short_summary,
            document=doc.model_dump_json(),
            created_at=created_at or utcnow(),
        )
        session.add(transcript)
        await session.flush()
        await index_transcript(await session.connection(), transcript.id, owner.user_id, doc)
        await session.commit()
        return transcript.id


async def find(
    engine: AsyncEngine, account: Account, q: str, *, limit: int = 20, offset: int = 0
) -> SearchResults:
    async with create_session_factory(engine)() as session:
        user = await session.get(User, account.user_id)
        assert user is not None
        return await search(await session.connection(), user, q, limit=limit, offset=offset)


async def index_rows(engine: AsyncEngine, transcript_id: str) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM transcript_search WHERE transcript_id = :id"),
            {"id": transcript_id},
        )
        return int(count or 0)


def unmarked(snippet: str) -> str:
    return re.sub(r"</?mark>", "", snippet)


# --- the query parser (no database) ---------------------------------------------------------


def parsed(q: str) -> ParsedQuery:
    result = parse_query(q)
    assert result is not None
    return result


def test_words_are_quoted_and_all_required() -> None:
    query = parsed("budget roadmap")
    assert query.fts5() == '("budget" AND "roadmap")'
    assert query.tsquery() == "('budget' & 'roadmap')"


def test_phrases_prefixes_exclusions_and_alternatives() -> None:
    query = parsed('"next quarter" road* -marketing OR hiring')
    assert query.fts5() == '(("next quarter" AND "road"*) NOT "marketing") OR ("hiring")'
    assert query.tsquery() == "(('next' <-> 'quarter') & 'road':* & !'marketing') | ('hiring')"


def test_punctuation_splits_words_as_the_index_does() -> None:
    # "e-mail" is a phrase of two words, like the tokenizers read it in the text.
    assert parsed("e-mail").fts5() == '("e mail")'
    assert parsed("say \"it's").tsquery() == "('say' & ('it' <-> 's'))"


@pytest.mark.parametrize("q", ["", "   ", '"', "*", ":-)", "(", "-budget", "OR", "OR OR"])
def test_no_word_to_search_for(q: str) -> None:
    assert parse_query(q) is None


# --- the index and queries, on both databases -----------------------------------------------


async def test_finds_a_spoken_word_at_its_time(engine: AsyncEngine, alice: Account) -> None:
    transcript_id = await add_transcript(engine, alice, PLANNING)
    results = await find(engine, alice, "roadmap")
    segment = next(hit for hit in results.hits if hit.kind == "segment")
    assert segment.transcript_id == transcript_id
    assert segment.title == "Kickoff planning"
    assert (segment.start, segment.end, segment.speaker) == (12.5, 18.0, "Bob")
    assert "<mark>roadmap</mark>" in segment.snippet
    assert segment.url == f"/transcripts/{transcript_id}?t=12.5"
    # The short summary says "roadmap" too; nothing else does.
    assert sorted(hit.kind for hit in results.hits) == ["segment", "summary"]
    assert results.total == 2
    assert results.next_offset is None


async def test_title_summary_and_topic_pieces(engine: AsyncEngine, alice: Account) -> None:
    await add_transcript(engine, alice, PLANNING)
    (title,) = (await find(engine, alice, "kickoff")).hits
    assert (title.kind, title.start, title.speaker) == ("title", 0.0, None)
    assert title.snippet == "<mark>Kickoff</mark> planning"
    (topic,) = (await find(engine, alice, "engineers")).hits
    assert (topic.kind, topic.start, topic.end) == ("topic", 40.0, 90.0)
    assert topic.url.endswith("?t=40.0")
    (summary,) = (await find(engine, alice, "approved")).hits
    assert summary.kind == "summary"


async def test_stemming(engine: AsyncEngine, alice: Account) -> None:
    await add_transcript(engine, alice, PLANNING)
    budget_hits = (await find(engine, alice, "budgets")).hits
    assert {hit.kind for hit in budget_hits} == {"segment", "summary"}
    segment = next(hit for hit in budget_hits if hit.kind == "segment")
    assert segment.start == 18.0
    assert "<mark>budget</mark>" in segment.snippet
    # And the other way round: "hire" in the text, "hiring" in the query.
    assert any(hit.start == 18.0 for hit in (await find(engine, alice, "hiring")).hits)


async def test_phrase_needs_the_words_together(engine: AsyncEngine, alice: Account) -> None:
    await add_transcript(engine, alice, PLANNING)
    (hit,) = (await find(engine, alice, '"next quarter"')).hits
    assert hit.start == 12.5  # not 25.0, which has "next" and "quarter" apart
    assert "quarter" in unmarked(hit.snippet)
    both = (await find(engine, alice, "next quarter")).hits
    assert sorted(hit.start for hit in both) == [12.5, 25.0]


async def test_prefix_exclusion_and_alternatives(engine: AsyncEngine, alice: Account) -> None:
    await add_transcript(engine, alice, PLANNING)
    prefixed = (await find(engine, alice, "roadm*")).hits
    assert sorted((hit.kind, hit.start) for hit in prefixed) == [("segment", 12.5), ("summary", 0)]
    starts = {hit.start for hit in (await find(engine, alice, "quarter -roadmap")).hits}
    assert starts == {25.0}
    alternatives = (await find(engine, alice, "morning OR numbers")).hits
    assert sorted(hit.start for hit in alternatives) == [0.0, 25.0]


async def test_stop_words_do_not_turn_an_exclusion_into_everything(
    engine: AsyncEngine, alice: Account
) -> None:
    """PostgreSQL drops "the" (a stop word), leaving "-budget" alone; SQLite keeps "the"."""
    await add_transcript(engine, alice, PLANNING)
    hits = (await find(engine, alice, "the -budget")).hits
    assert all("the" in unmarked(hit.snippet).lower().split() for hit in hits)
    assert not any("budget" in hit.snippet.lower() for hit in hits)


NASTY = [
    '"',
    '""',
    '"budget',
    'budget"',
    "*",
    "budget*",
    "*budget",
    "**",
    ":",
    "budget:",
    "title:budget",
    "-",
    "--budget",
    "budget -",
    "NEAR(",
    "NEAR(budget roadmap)",
    "NEAR(budget, 2)",
    "'",
    "budget's",
    "O'Brien",
    ")",
    "(",
    "(budget",
    "budget)",
    "AND",
    "OR",
    "NOT",
    "budget AND",
    "NOT budget",
    "budget OR",
    "a & b | !c",
    "<->",
    "budget <-> roadmap",
    "budget:*",
    "'budget':*A",
    "\\",
    "budget\\",
    "^budget",
    "{budget}",
    "[budget]",
    "+budget",
    "budget;DROP TABLE transcripts;--",
    "%_",
    "\x00budget",
    "\u00e9\U0001f389 \uff42\uff55\uff44\uff47\uff45\uff54",  # fullwidth "budget": NFKC folds it
    "\ue000budget\ue001",
]


async def test_query_syntax_never_errors(engine: AsyncEngine, alice: Account) -> None:
    await add_transcript(engine, alice, PLANNING)
    for q in NASTY:
        await find(engine, alice, q)
    # Punctuation around a word does not hide it.
    for q in ("(budget", "budget)", "budget:", "^budget", "{budget}", "budget;--"):
        assert (await find(engine, alice, q)).total == 2, q
    alphabet = [*"\"'*:-()^+{}[]\\&|!<>,;.%_~ ", "OR", "AND", "NOT", "NEAR", "budget", "a"]
    rng = random.Random(7)
    for _ in range(150):
        q = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        await find(engine, alice, q)
    # The longest query the route allows, one letter words: a long but valid expression.
    await find(engine, alice, " ".join("abcdefghij" * 10))
    await find(engine, alice, " OR ".join("budget" for _ in range(20)))


async def test_who_finds_what(engine: AsyncEngine, alice: Account, bob: Account) -> None:
    def doc(word: str) -> TranscriptDocument:
        return document(f"Meeting {word}", [(0, 1.0, 2.0, f"the secret word is {word}")])

    private = await add_transcript(engine, alice, doc("private"))
    room = await add_transcript(engine, alice, doc("room"), share_mode=ShareMode.room)
    public = await add_transcript(engine, alice, doc("public"), share_mode=ShareMode.public)
    unfinished = await add_transcript(
        engine,
        alice,
        doc("unfinished"),
        share_mode=ShareMode.public,
        status=TranscriptStatus.processing,
    )
    own = await add_transcript(engine, bob, doc("bobs"))

    def ids(results: SearchResults) -> set[str]:
        return {hit.transcript_id for hit in results.hits}

    assert ids(await find(engine, bob, "secret")) == {room, public, own}
    assert ids(await find(engine, bob, "private")) == set()
    assert ids(await find(engine, alice, "secret")) == {private, room, public}
    assert unfinished not in ids(await find(engine, alice, "unfinished"))


async def test_reindexing_replaces_the_rows(engine: AsyncEngine, alice: Account) -> None:
    transcript_id = await add_transcript(engine, alice, PLANNING)
    rows = await index_rows(engine, transcript_id)
    assert rows == 1 + 2 + 1 + 4  # title, two summaries, a topic, four segments
    renamed = PLANNING.model_copy(update={"title": "Annual offsite"})
    for doc in (PLANNING, renamed, renamed):
        async with engine.begin() as conn:
            await index_transcript(conn, transcript_id, alice.user_id, doc)
    assert await index_rows(engine, transcript_id) == rows
    assert (await find(engine, alice, "roadmap")).total == 2
    assert (await find(engine, alice, "kickoff")).hits == []
    assert [hit.kind for hit in (await find(engine, alice, "offsite")).hits] == ["title"]


async def test_empty_pieces_are_not_indexed(engine: AsyncEngine, alice: Account) -> None:
    transcript_id = await add_transcript(
        engine, alice, document("", [(0, 0.0, 1.0, "  "), (1, 1.0, 2.0, "hello")])
    )
    assert await index_rows(engine, transcript_id) == 1


async def test_drop_from_index(engine: AsyncEngine, alice: Account) -> None:
    transcript_id = await add_transcript(engine, alice, PLANNING)
    async with engine.begin() as conn:
        await drop_from_index(conn, transcript_id)
    assert await index_rows(engine, transcript_id) == 0
    assert (await find(engine, alice, "roadmap")).hits == []


async def test_deleting_a_transcript_empties_its_rows(engine: AsyncEngine, alice: Account) -> None:
    """A foreign key on PostgreSQL, a trigger on SQLite: a batch migration that rebuilds
    `transcripts` on SQLite drops that trigger, and this test says so."""
    keep = await add_transcript(engine, alice, PLANNING)
    gone = await add_transcript(engine, alice, PLANNING)
    async with engine.begin() as conn:
        await conn.execute(delete(Transcript).where(Transcript.id == gone))
    assert await index_rows(engine, gone) == 0
    assert await index_rows(engine, keep) == 8
    assert {hit.transcript_id for hit in (await find(engine, alice, "roadmap")).hits} == {keep}


async def test_snippets_are_escaped_html(engine: AsyncEngine, alice: Account) -> None:
    await add_transcript(
        engine,
        alice,
        document(
            "<script>alert('title')</script> budget",
            [(0, 3.0, 9.0, 'Jerry & "Spike" <b>budget</b> <script>alert(1)</script> talk')],
        ),
    )
    hits = (await find(engine, alice, "budget")).hits
    assert {hit.kind for hit in hits} == {"title", "segment"}
    for hit in hits:
        assert "<mark>budget</mark>" in hit.snippet
        assert not set("<>") & set(unmarked(hit.snippet))
    segment = next(hit for hit in hits if hit.kind == "segment")
    assert "&amp; &quot;Spike&quot;" in segment.snippet


async def test_long_text_gives_a_short_snippet(engine: AsyncEngine, alice: Account) -> None:
    filler = " ".join(f"word{n}" for n in range(200))
    await add_transcript(
        engine, alice, document("Long", [(0, 0.0, 60.0, f"{filler} budget {filler}")])
    )
    (hit,) = (await find(engine, alice, "budget")).hits
    assert "<mark>budget</mark>" in hit.snippet
    assert len(unmarked(hit.snippet).split()) < 40


async def test_best_match_first_then_pages(engine: AsyncEngine, alice: Account) -> None:
    lines: list[Line] = [
        (0, float(n), float(n + 1), f"budget item {n} and more words about other things")
        for n in range(5)
    ]
    lines.append((1, 10.0, 11.0, "budget budget budget"))
    transcript_id = await add_transcript(engine, alice, document("Numbers", lines))
    first = await find(engine, alice, "budget", limit=2)
    assert first.total == 6
    assert first.next_offset == 2
    assert first.hits[0].start == 10.0  # the densest match
    second = await find(engine, alice, "budget", limit=2, offset=2)
    last = await find(engine, alice, "budget", limit=2, offset=4)
    assert (second.next_offset, last.next_offset, last.total) == (4, None, 6)
    starts = [hit.start for page in (first, second, last) for hit in page.hits]
    assert sorted(starts) == [0.0, 1.0, 2.0, 3.0, 4.0, 10.0]
    assert {hit.transcript_id for hit in first.hits} == {transcript_id}
    beyond = await find(engine, alice, "budget", limit=2, offset=10)
    assert (beyond.hits, beyond.total, beyond.next_offset) == ([], 6, None)


async def test_newest_first_among_equal_matches(engine: AsyncEngine, alice: Account) -> None:
    now = utcnow()
    same = document("Budget", [(0, 1.0, 2.0, "budget")])
    older = await add_transcript(engine, alice, same, created_at=now - timedelta(days=1))
    newer = await add_transcript(engine, alice, same, created_at=now)
    oldest = await add_transcript(engine, alice, same, created_at=now - timedelta(days=2))
    segments = [hit for hit in (await find(engine, alice, "budget")).hits if hit.kind == "segment"]
    assert [hit.transcript_id for hit in segments] == [newer, older, oldest]


# --- the route --------------------------------------------------------------------------------


async def test_route_finds_and_pages(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account
) -> None:
    transcript_id = await add_transcript(engine, alice, PLANNING)
    response = await client.get(
        "/v1/transcripts/search", params={"q": "roadmap", "limit": 1}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 2
    assert body["next_offset"] == 1
    (hit,) = body["hits"]
    assert hit["transcript_id"] == transcript_id
    assert "<mark>roadmap</mark>" in hit["snippet"]
    assert hit["url"].startswith(f"/transcripts/{transcript_id}?t=")


async def test_route_answers_odd_queries(client: httpx.AsyncClient, alice: Account) -> None:
    for q in ('"', "NEAR(", "*:-)'", "-x"):
        response = await client.get(
            "/v1/transcripts/search", params={"q": q}, headers=alice.headers
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"hits": [], "total": 0, "next_offset": None}


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({}, "q is empty"),
        ({"q": ""}, "q is empty"),
        ({"q": "   "}, "q is empty"),
        ({"q": "b" * 201}, "201 characters long; keep it to 200 or fewer"),
        ({"q": "budget", "limit": 0}, "limit"),
        ({"q": "budget", "limit": 101}, "limit"),
        ({"q": "budget", "offset": -1}, "offset"),
        ({"q": "budget", "limit": "many"}, "limit"),
    ],
)
async def test_route_rejects_bad_input(
    client: httpx.AsyncClient, alice: Account, params: dict[str, object], says: str
) -> None:
    response = await client.get("/v1/transcripts/search", params=params, headers=alice.headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert says in body["detail"]
    assert body["detail"].endswith(".")


async def test_route_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/transcripts/search", params={"q": "budget"})
    assert response.status_code == 401


async def test_route_other_users_private(
    client: httpx.AsyncClient, engine: AsyncEngine, alice: Account, make_account: MakeAccount
) -> None:
    await add_transcript(engine, alice, PLANNING)
    carol = await make_account("carol@example.com")
    response = await client.get(
        "/v1/transcripts/search", params={"q": "roadmap"}, headers=carol.headers
    )
    assert response.status_code == 200
    assert response.json()["hits"] == []
