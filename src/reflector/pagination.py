"""Keyset pagination over (created_at, id) with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from reflector.errors import BadRequest

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 100

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page, 1-{MAX_LIMIT}.")]
Cursor = Annotated[
    str | None, Query(description="The `next_cursor` of the previous page.", max_length=200)
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(created_at: datetime, item_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), item_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, item_id = json.loads(raw)
        when = datetime.fromisoformat(created_at)
        if when.tzinfo is None:
            raise ValueError("cursor time without a zone")
        return when, str(item_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise BadRequest(
            "The cursor is not one this API issued; pass the next_cursor of the previous page "
            "unchanged, or leave it out to start from the first page."
        ) from None


async def keyset_page(
    session: AsyncSession,
    query: Select[Any],
    model: Any,
    *,
    limit: int,
    cursor: str | None,
    newest_first: bool = False,
) -> tuple[list[Any], str | None]:
    """One page of `query` ordered by (created_at, id) of `model`, after `cursor`; the rows and
    the cursor of the next page (None on the last)."""
    created, ident = model.created_at, model.id
    if cursor:
        at, after_id = decode_cursor(cursor)
        if newest_first:
            query = query.where(or_(created < at, and_(created == at, ident < after_id)))
        else:
            query = query.where(or_(created > at, and_(created == at, ident > after_id)))
    order = (created.desc(), ident.desc()) if newest_first else (created, ident)
    rows = list(await session.scalars(query.order_by(*order).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last.created_at, last.id)
