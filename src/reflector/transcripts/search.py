"""Full-text search over transcripts: the index, and queries against it.

The index (`transcript_search`, migration 0007) holds one row per searchable piece of an
ended transcript: its title, its short and long summary, each topic and each spoken segment,
with the time it starts at. PostgreSQL indexes the rows with a stored `tsvector` (english) under
a GIN index; SQLite with an FTS5 table (porter stemming) over the same rows. The table is not in
the ORM metadata: its shape differs per database, so only this module reads and writes it.

What users type never reaches the database as query syntax: `parse_query` keeps the words
(runs of letters and digits), "quoted phrases", a trailing `*` (prefix), a leading `-` (not)
and `OR` between words, and the FTS5 MATCH string or the PostgreSQL tsquery is built from those
alone, so no input can make a syntax error.

Snippets are safe to put in a page as HTML: the database marks matches with two private-use
characters (stripped from the indexed text), the rest is HTML-escaped here, then the markers
become `<mark>` and `</mark>`.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TextClause,
    bindparam,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from reflector.auth.models import User
from reflector.pipeline.types import TranscriptDocument
from reflector.transcripts.models import ShareMode, TranscriptStatus

MAX_QUERY_CHARS = 200

SEARCH_TABLE = "transcript_search"
SQLITE_FTS_TABLE = "transcript_search_fts"
# Every table the search index makes on either database (FTS5 keeps its index in "shadow"
# tables named after it); migration checks and autogenerate leave these out.
SEARCH_TABLE_NAMES = frozenset(
    {
        SEARCH_TABLE,
        SQLITE_FTS_TABLE,
        *(f"{SQLITE_FTS_TABLE}_{part}" for part in ("data", "idx", "docsize", "config")),
    }
)

Kind = Literal["title", "summary", "topic", "segment"]

# The columns both databases share (PostgreSQL adds the generated `search_vector`). Its own
# metadata: Base.metadata describes the tables that are the same everywhere.
_rows = Table(
    SEARCH_TABLE,
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("transcript_id", String(40), nullable=False),
    Column("owner_id", String(40), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("speaker", Text),
    Column("start_time", Float, nullable=False),
    Column("end_time", Float, nullable=False),
    Column("body", Text, nullable=False),
)

# Match markers: private-use characters, never left in indexed text, so the only markup in a
# snippet is what the database put around the matches.
_START, _STOP = "\ue000", "\ue001"
_STRIPPED = {ord(_START): None, ord(_STOP): None, 0: None}
_HEADLINE_OPTIONS = (
    f"StartSel={_START}, StopSel={_STOP}, MaxWords=12, MinWords=6, MaxFragments=2, "
    'FragmentDelimiter=" … "'
)


class SearchHit(BaseModel):
    transcript_id: str
    title: str | None = Field(description="The transcript's title.")
    kind: Kind = Field(description="What matched: the title, a summary, a topic or a segment.")
    start: float = Field(description="Seconds from the start of the recording.")
    end: float
    speaker: str | None = Field(description="Who spoke, for a segment whose speaker is known.")
    snippet: str = Field(
        description="The matching text around the match, HTML-escaped, matches in <mark>."
    )
    url: str = Field(description="The transcript's web page at that moment.")


class SearchResults(BaseModel):
    hits: list[SearchHit]
    total: int = Field(description="How many hits there are in all.")
    next_offset: int | None = Field(description="The offset of the next page; null on the last.")


# --- the index ---------------------------------------------------------------------------


def _clean(value: str) -> str:
    return " ".join(value.translate(_STRIPPED).split())


def _pieces(doc: TranscriptDocument) -> Iterator[dict[str, Any]]:
    names = {speaker.id: speaker.name for speaker in doc.speakers}
    pieces: list[tuple[Kind, float, float, str | None, str]] = [
        ("title", 0.0, doc.duration, None, doc.title),
        ("summary", 0.0, doc.duration, None, doc.short_summary),
        ("summary", 0.0, doc.duration, None, doc.long_summary),
    ]
    pieces += [
        ("topic", topic.start, topic.end, None, f"{topic.title} — {topic.summary}")
        for topic in doc.topics
    ]
    pieces += [
        ("segment", segment.start, segment.end, names.get(segment.speaker), segment.text)
        for segment in doc.segments
    ]
    seq = 0
    for kind, start, end, speaker, body in pieces:
        cleaned = _clean(body)
        if not cleaned.strip(" —"):
            continue
        yield {
            "kind": kind,
            "seq": seq,
            "speaker": speaker,
            "start_time": start,
            "end_time": end,
            "body": cleaned,
        }
        seq += 1


async def index_transcript(
    conn: AsyncConnection, transcript_id: str, owner_id: str, doc: TranscriptDocument
) -> None:
    """Make `doc` the searchable content of the transcript, replacing what was indexed for it
    before (so calling it again changes nothing). Runs in the caller's transaction."""
    if conn.dialect.name == "postgresql":
        # Two re-indexings of one transcript at once take turns instead of adding rows twice.
        await conn.execute(
            text("SELECT 1 FROM transcripts WHERE id = :id FOR UPDATE"), {"id": transcript_id}
        )
    await drop_from_index(conn, transcript_id)
    rows = [
        {"transcript_id": transcript_id, "owner_id": owner_id, **piece} for piece in _pieces(doc)
    ]
    if rows:
        await conn.execute(_rows.insert(), rows)


async def drop_from_index(conn: AsyncConnection, transcript_id: str) -> None:
    """Remove the transcript from search results. Runs in the caller's transaction. (Deleting
    the transcript row does this too, on both databases.)"""
    await conn.execute(_rows.delete().where(_rows.c.transcript_id == transcript_id))


# --- queries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """Words that must appear together, in order (one word, or a phrase)."""

    words: tuple[str, ...]
    prefix: bool = False  # the last word may be the start of a longer one
    negated: bool = False


@dataclass(frozen=True)
class ParsedQuery:
    """Alternatives (OR) of terms that must all match (AND); each has a term that is not
    negated."""

    clauses: tuple[tuple[Term, ...], ...]

    def fts5(self) -> str:
        """The FTS5 MATCH string: every word inside a double-quoted string."""

        def term(item: Term) -> str:
            return '"' + " ".join(item.words) + '"' + ("*" if item.prefix else "")

        alternatives = []
        for clause in self.clauses:
            expression = " AND ".join(term(item) for item in clause if not item.negated)
            negated = [term(item) for item in clause if item.negated]
            if negated:
                expression = f"({expression})" + "".join(f" NOT {item}" for item in negated)
            alternatives.append(f"({expression})")
        return " OR ".join(alternatives)

    def tsquery(self) -> str:
        """The input of PostgreSQL's to_tsquery: every word a quoted lexeme (the words hold no
        quote or backslash), normalised by the text search configuration."""

        def term(item: Term) -> str:
            lexemes = [f"'{word}'" for word in item.words]
            if item.prefix:
                lexemes[-1] += ":*"
            inner = " <-> ".join(lexemes)
            phrase = f"({inner})" if len(lexemes) > 1 else inner
            return f"!{phrase}" if item.negated else phrase

        return " | ".join(
            "(" + " & ".join(term(item) for item in clause) + ")" for clause in self.clauses
        )


# A "quoted phrase" (an unclosed quote runs to the end), optionally after `-` and before `*`;
# or a run of anything else up to a space or a quote.
_CHUNK = re.compile(r'(?P<neg>-?)"(?P<phrase>[^"]*)(?:"(?P<star>\*?)|$)|(?P<bare>[^\s"]+)')
# Letters and digits: what both full-text engines treat as word characters.
_WORD = re.compile(r"[^\W_]+")
# A chunk that ends in a word, then `*`, then nothing but punctuation: a prefix.
_PREFIX_END = re.compile(r"[^\W_]\*+[^\w]*$")


def parse_query(q: str) -> ParsedQuery | None:
    """The searchable part of what the user typed; None when it has no word to search for."""
    clauses: list[list[Term]] = [[]]
    for match in _CHUNK.finditer(unicodedata.normalize("NFKC", q)):
        bare = match["bare"]
        if bare is not None:
            if bare == "OR":
                clauses.append([])
                continue
            words = tuple(_WORD.findall(bare))
            negated = bare.startswith("-")
            prefix = _PREFIX_END.search(bare) is not None
        else:
            words = tuple(_WORD.findall(match["phrase"]))
            negated = match["neg"] == "-"
            prefix = match["star"] == "*"
        if words:
            clauses[-1].append(Term(words, prefix=prefix, negated=negated))
    # A clause of exclusions only would match nearly everything: drop it.
    kept = tuple(tuple(clause) for clause in clauses if any(not term.negated for term in clause))
    return ParsedQuery(kept) if kept else None


def _visibility_params(user: User) -> dict[str, Any]:
    return {
        "ended": TranscriptStatus.ended.value,
        "user_id": user.id,
        "room": ShareMode.room.value,
        "public": ShareMode.public.value,
    }


# The statements are written out whole so that what runs is what one reads. Every one filters
# with the same visibility: ended, and the caller's own or shared with the room or the public
# (transcripts.access.can_read for a signed-in user).
_SQLITE_PAGE = text("""
    SELECT s.id, s.transcript_id, s.kind, s.speaker, s.start_time, s.end_time, t.title
    FROM transcript_search_fts
    JOIN transcript_search s ON s.id = transcript_search_fts.rowid
    JOIN transcripts t ON t.id = s.transcript_id
    WHERE transcript_search_fts MATCH :match
      AND t.status = :ended AND (t.owner_id = :user_id OR t.share_mode IN (:room, :public))
    ORDER BY bm25(transcript_search_fts), t.created_at DESC, t.id, s.seq
    LIMIT :limit OFFSET :offset
""")
_SQLITE_COUNT = text("""
    SELECT count(*)
    FROM transcript_search_fts
    JOIN transcript_search s ON s.id = transcript_search_fts.rowid
    JOIN transcripts t ON t.id = s.transcript_id
    WHERE transcript_search_fts MATCH :match
      AND t.status = :ended AND (t.owner_id = :user_id OR t.share_mode IN (:room, :public))
""")
# Snippets (up to 20 tokens) only for the page's rows: in the page query FTS5 would make one
# for every match before sorting.
_SQLITE_SNIPPETS = text("""
    SELECT rowid AS id, snippet(transcript_search_fts, 0, :start, :stop, '…', 20) AS snippet
    FROM transcript_search_fts
    WHERE transcript_search_fts MATCH :match AND rowid IN :ids
""").bindparams(bindparam("ids", expanding=True))

# `query` is used twice, so PostgreSQL computes it once; the headline is made in the outer
# query, for the page's rows only. querytree() is 'T' when the query is left with exclusions
# only (its other words were stop words, as in "the -budget"): that would match nearly every
# row, so it matches none.
_POSTGRES_PAGE = text("""
    WITH query AS (SELECT to_tsquery('english'::regconfig, :tsquery) AS q),
    page AS (
        SELECT s.id, s.transcript_id, s.kind, s.speaker, s.start_time, s.end_time, s.body,
               s.seq, t.title, t.created_at, ts_rank(s.search_vector, query.q) AS rank
        FROM transcript_search s JOIN transcripts t ON t.id = s.transcript_id, query
        WHERE s.search_vector @@ query.q AND querytree(query.q) <> 'T'
          AND t.status = :ended AND (t.owner_id = :user_id OR t.share_mode IN (:room, :public))
        ORDER BY rank DESC, t.created_at DESC, t.id, s.seq
        LIMIT :limit OFFSET :offset
    )
    SELECT page.id, page.transcript_id, page.kind, page.speaker, page.start_time,
           page.end_time, page.title,
           ts_headline('english'::regconfig, page.body, query.q, :options) AS snippet
    FROM page, query
    ORDER BY page.rank DESC, page.created_at DESC, page.transcript_id, page.seq
""")
_POSTGRES_COUNT = text("""
    WITH query AS (SELECT to_tsquery('english'::regconfig, :tsquery) AS q)
    SELECT count(*)
    FROM transcript_search s JOIN transcripts t ON t.id = s.transcript_id, query
    WHERE s.search_vector @@ query.q AND querytree(query.q) <> 'T'
      AND t.status = :ended AND (t.owner_id = :user_id OR t.share_mode IN (:room, :public))
""")


def render_snippet(marked: str) -> str:
    """HTML for a snippet the database marked with the private-use markers."""
    escaped = html.escape(" ".join(marked.split()), quote=True)
    return escaped.replace(_START, "<mark>").replace(_STOP, "</mark>")


def _hit(row: Any, snippet: str) -> SearchHit:
    return SearchHit(
        transcript_id=row.transcript_id,
        title=row.title,
        kind=row.kind,
        start=row.start_time,
        end=row.end_time,
        speaker=row.speaker if row.kind == "segment" else None,
        snippet=render_snippet(snippet),
        url=f"/transcripts/{row.transcript_id}?t={row.start_time:.1f}",
    )


async def _sqlite_page(conn: AsyncConnection, params: dict[str, Any]) -> list[SearchHit]:
    rows = (await conn.execute(_SQLITE_PAGE, params)).all()
    if not rows:
        return []
    marks = {"start": _START, "stop": _STOP}
    ids = [row.id for row in rows]
    snippets = {
        row.id: row.snippet
        for row in await conn.execute(
            _SQLITE_SNIPPETS, {"match": params["match"], **marks, "ids": ids}
        )
    }
    return [_hit(row, snippets.get(row.id, "")) for row in rows]


async def search(
    conn: AsyncConnection, user: User, q: str, *, limit: int, offset: int
) -> SearchResults:
    """Pieces of the ended transcripts `user` may read (their own, and those shared with the
    room or the public) that match `q`: best match first, then the newest transcript."""
    if limit < 1 or offset < 0:
        raise ValueError("limit must be at least 1 and offset at least 0")
    if len(q) > MAX_QUERY_CHARS:
        raise ValueError(f"the query is longer than {MAX_QUERY_CHARS} characters")
    parsed = parse_query(q)
    if parsed is None:
        return SearchResults(hits=[], total=0, next_offset=None)
    params = _visibility_params(user)
    page = {"limit": limit, "offset": offset}
    count: TextClause
    hits: list[SearchHit]
    dialect = conn.dialect.name
    if dialect == "sqlite":
        params["match"] = parsed.fts5()
        hits = await _sqlite_page(conn, {**params, **page})
        count = _SQLITE_COUNT
    elif dialect == "postgresql":
        params["tsquery"] = parsed.tsquery()
        options = {"options": _HEADLINE_OPTIONS}
        rows = (await conn.execute(_POSTGRES_PAGE, {**params, **page, **options})).all()
        hits = [_hit(row, row.snippet) for row in rows]
        count = _POSTGRES_COUNT
    else:
        raise NotImplementedError(f"transcript search does not support {dialect}")

    if hits and len(hits) < limit:
        total = offset + len(hits)  # the last page: no need to count
    else:
        total = int((await conn.execute(count, params)).scalar_one())
    following = offset + len(hits)
    return SearchResults(
        hits=list(hits), total=total, next_offset=following if following < total else None
    )
