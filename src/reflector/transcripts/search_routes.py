"""GET /v1/transcripts/search: full-text search over the transcripts the caller may read.

Mount this router before the transcripts router: `/v1/transcripts/{transcript_id}` would
otherwise take `search` for a transcript id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from reflector.auth.dependencies import CurrentUser
from reflector.deps import SessionDep
from reflector.errors import InvalidInput
from reflector.transcripts.search import MAX_QUERY_CHARS, SearchResults, search

router = APIRouter(prefix="/v1/transcripts", tags=["transcripts"])

MAX_LIMIT = 100
MAX_OFFSET = 10_000


@router.get("/search", summary="Search the transcripts you can read")
async def search_transcripts(
    user: CurrentUser,
    session: SessionDep,
    q: Annotated[
        str,
        Query(
            description=(
                f"What to look for, up to {MAX_QUERY_CHARS} characters: words (all must "
                'match, in any form: "budgets" finds "budget"), "a quoted phrase", a trailing '
                "`*` for words that start so, `-word` to leave out, `OR` between alternatives."
            )
        ),
    ] = "",
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Hits per page, 1-{MAX_LIMIT}.")
    ] = 20,
    offset: Annotated[
        int,
        Query(ge=0, le=MAX_OFFSET, description="Hits to skip: the previous page's next_offset."),
    ] = 0,
) -> SearchResults:
    """Titles, summaries, topics and spoken segments of your ended transcripts and of those
    shared with you, best match first: each hit has its time, a snippet (HTML, matches in
    `<mark>`) and the link to that moment in the transcript's page."""
    words = q.strip()
    if not words:
        raise InvalidInput(
            "Invalid request: query parameter q is empty; give the words to search for, "
            "e.g. /v1/transcripts/search?q=budget."
        )
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidInput(
            f"Invalid request: query parameter q is {len(q)} characters long; keep it to "
            f"{MAX_QUERY_CHARS} or fewer."
        )
    conn = await session.connection()
    return await search(conn, user, words, limit=limit, offset=offset)
