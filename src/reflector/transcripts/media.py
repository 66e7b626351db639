"""Serving a stored object with HTTP range requests (RFC 9110 section 14), for the audio
player: it asks for the piece it needs to seek, so an hour of audio is never sent whole.

- No Range header: 200 with the whole object.
- One range, `bytes=a-b`, `bytes=a-` or `bytes=-n` (the last n bytes): 206 with exactly those
  bytes and `Content-Range: bytes a-b/size`; an end past the object is cut to its last byte.
- A range that starts at or past the end (or `bytes=-0`, or any range of an empty object):
  416 with `Content-Range: bytes */size` (and the usual JSON error body).
- Several ranges, another unit, or a malformed header: ignored as RFC 9110 allows, 200 with
  the whole object (no multipart/byteranges answers; players ask for one range).

Every answer says `Accept-Ranges: bytes`. The body is streamed in CHUNK_BYTES pieces, each
read with Storage.read_range (one ranged GET per piece on S3), so memory stays flat whatever
the object's size. HEAD answers the same status and headers without the body.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

from starlette.responses import Response, StreamingResponse

from reflector.errors import json_error
from reflector.recordings.storage import Storage

CHUNK_BYTES = 1024 * 1024

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class RangeNotSatisfiable(Exception):
    """The Range header asks for bytes the object does not have."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to answer with 206, or None for the whole object (no header, or one we
    ignore); RangeNotSatisfiable for a 416."""
    if header is None:
        return None
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    parts = [part for part in specs.split(",") if part.strip()]
    if len(parts) != 1:
        return None
    match = _SPEC.match(parts[0])
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # malformed: ignored
    if start >= size:
        raise RangeNotSatisfiable
    return ByteRange(start, min(int(last), size - 1) if last else size - 1)


async def _pieces(storage: Storage, key: str, span: ByteRange) -> AsyncIterator[bytes]:
    position = span.start
    while position <= span.end:
        last = min(position + CHUNK_BYTES - 1, span.end)
        data = await storage.read_range(key, position, last)
        if not data:
            return  # the object shrank under us; the client sees a short body
        yield data
        position += len(data)


def range_response(
    storage: Storage,
    key: str,
    size: int,
    range_header: str | None,
    *,
    media_type: str,
    head: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    """The response for a GET (or HEAD) of the object `key` of `size` bytes."""
    common = {"Accept-Ranges": "bytes", **(headers or {})}
    try:
        span = parse_range(range_header, size)
    except RangeNotSatisfiable:
        return json_error(
            416,
            "range_not_satisfiable",
            f"The range {range_header!r} lies outside the {size} bytes there are; ask for "
            f"bytes from 0 to {max(size - 1, 0)}, or leave Range out for all of them.",
            {**common, "Content-Range": f"bytes */{size}"},
        )
    status = 200
    if span is None:
        if size == 0:
            return Response(b"", media_type=media_type, headers=common)
        span = ByteRange(0, size - 1)
    else:
        status = 206
        common["Content-Range"] = f"bytes {span.start}-{span.end}/{size}"
    common["Content-Length"] = str(span.length)
    if head:
        return Response(status_code=status, media_type=media_type, headers=common)
    return StreamingResponse(
        _pieces(storage, key, span), status_code=status, media_type=media_type, headers=common
    )


_UNSAFE = re.compile(r"[^\w]+")


def _slug(text: str, *, ascii_only: bool) -> str:
    if ascii_only:
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _UNSAFE.sub("-", text.lower()).strip("-_")
    return slug[:80].rstrip("-_")


def attachment(title: str | None, fallback: str, extension: str) -> str:
    """A Content-Disposition for a download named after `title` (RFC 6266): an ASCII
    `filename` (a slug, `fallback` when nothing of the title is ASCII) and, when the title
    has other characters, `filename*` with them in UTF-8."""
    plain = _slug(title or "", ascii_only=True) or fallback
    value = f'attachment; filename="{plain}.{extension}"'
    rich = _slug(title or "", ascii_only=False)
    if rich and not rich.isascii():
        value += f"; filename*=UTF-8''{quote(f'{rich}.{extension}', safe='')}"
    return value
