"""POST /v1/transcripts: a media file uploaded as multipart/form-data becomes a transcript.

The body is never held in memory: it is parsed as it arrives (python-multipart's streaming
parser) and the file's bytes go straight into a temporary file under DATA_DIR/uploads, counted
on the way, so a file over MAX_UPLOAD_BYTES is refused (413) as soon as it passes the limit and
an empty one (422) as soon as its part ends. Whatever stops the request (a refusal, a client
that hangs up, an error) removes the temporary file; a refusal after the file was stored also
removes the stored object and the row, so nothing is left behind.

Fields: `file` (required), and optionally `room` (id or name of one of the caller's rooms),
`language` (`en`, `de`, ... or `auto`), `speakers` (how many people speak, 1-100).
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import re
import tempfile
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy.ext.asyncio import AsyncSession

from reflector.auth.models import User
from reflector.db.base import new_id
from reflector.errors import (
    BadRequest,
    InvalidInput,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from reflector.jobs.queue import JobQueue
from reflector.logs import get_logger
from reflector.recordings.storage import Storage
from reflector.transcripts.models import Transcript, TranscriptStatus
from reflector.transcripts.processing import PROCESS_UPLOAD, transcript_prefix
from reflector.transcripts.service import room_of

_log = get_logger("reflector.transcripts.uploads")

FILE_FIELD = "file"
TEXT_FIELDS = ("room", "language", "speakers")
# A form field other than the file is a short value.
_MAX_FIELD_BYTES = 1024
MAX_SPEAKERS = 100
UPLOADS_FOLDER = "uploads"

# Containers the audio step decodes; anything else is stored as `source.bin` and left to the
# audio step to recognise (or refuse with a sentence).
MEDIA_EXTENSIONS = frozenset(
    {
        ".aac",
        ".aif",
        ".aiff",
        ".amr",
        ".avi",
        ".flac",
        ".m4a",
        ".m4v",
        ".mka",
        ".mkv",
        ".mov",
        ".mp3",
        ".mp4",
        ".mpeg",
        ".mpg",
        ".oga",
        ".ogg",
        ".opus",
        ".wav",
        ".weba",
        ".webm",
        ".wma",
        ".3gp",
    }
)
_LANGUAGE = re.compile(r"^(auto|[a-z]{2,3})$")
_HOW = "send the recording as multipart/form-data with a field named 'file' (curl -F file=@x.mp4)"


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file is larger than MAX_UPLOAD_BYTES ({limit} bytes); send a smaller file, or "
        "ask the administrator to raise MAX_UPLOAD_BYTES."
    )


@dataclass
class ReceivedFile:
    """The uploaded file in a temporary file, and the form's other fields."""

    path: Path
    size: int
    filename: str  # as sent, not yet cleaned
    content_type: str
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        _remove(self.path)


def _remove(path: Path) -> None:
    # One quick system call: not worth a thread, and it must run even on cancellation.
    path.unlink(missing_ok=True)


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    content_type: str = ""
    headers: dict[bytes, bytes] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)  # text fields only


class _Form:
    """Callbacks of the streaming parser. They cannot await: file bytes are queued in
    `pending` and written by the reading loop after each chunk."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.part = _Part()
        self.header_name = b""
        self.header_value = b""
        self.file: _Part | None = None
        self.file_size = 0
        self.file_ended = False
        self.pending: list[bytes] = []
        self.fields: dict[str, str] = {}

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[self.header_name.strip().lower()] = self.header_value.strip()
        self.header_name = self.header_value = b""

    def on_headers_finished(self) -> None:
        _disposition, options = parse_options_header(
            self.part.headers.get(b"content-disposition", b"")
        )
        name = options.get(b"name")
        if name is None:
            raise BadRequest(
                f"A part of the multipart body has no name in its Content-Disposition; {_HOW}."
            )
        self.part.name = name.decode("utf-8", "replace")
        raw_filename = options.get(b"filename")
        if raw_filename is not None:
            self.part.filename = raw_filename.decode("utf-8", "replace")
        self.part.content_type = (
            self.part.headers.get(b"content-type", b"").decode("latin-1").strip()
        )
        if self.part.name == FILE_FIELD:
            if self.file is not None:
                raise InvalidInput("Invalid request: file: send one file per upload.")
            self.file = self.part
        elif self.part.name not in TEXT_FIELDS:
            accepted = ", ".join((FILE_FIELD, *TEXT_FIELDS))
            raise InvalidInput(
                f"Invalid request: unknown field {self.part.name!r}; accepted fields are "
                f"{accepted}."
            )
        elif self.part.filename is not None:
            raise InvalidInput(
                f"Invalid request: {self.part.name}: send it as a plain form value, not a file."
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part is self.file:
            self.file_size += end - start
            if self.file_size > self.limit:
                raise too_large(self.limit)
            self.pending.append(data[start:end])
            return
        self.part.data += data[start:end]
        if len(self.part.data) > _MAX_FIELD_BYTES:
            raise InvalidInput(
                f"Invalid request: {self.part.name}: longer than {_MAX_FIELD_BYTES} bytes; "
                "send a short value."
            )

    def on_part_end(self) -> None:
        if self.part is self.file:
            self.file_ended = True
            if self.file_size == 0:
                raise InvalidInput(
                    "Invalid request: file: the file is empty; send the recording itself."
                )
            return
        if self.part.name in self.fields:
            raise InvalidInput(f"Invalid request: {self.part.name}: send it once.")
        self.fields[self.part.name] = self.part.data.decode("utf-8", "replace").strip()


def multipart_boundary(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data Content-Type; 415/400 for anything else."""
    media, options = parse_options_header(content_type or "")
    if media != b"multipart/form-data":
        raise UnsupportedMediaType(
            f"The body was sent as {content_type or 'no content type'!r}; {_HOW}."
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadRequest(f"The multipart Content-Type has no boundary; {_HOW}.")
    return boundary


async def receive_file(
    chunks: AsyncIterator[bytes], content_type: str | None, *, limit: int, folder: Path
) -> ReceivedFile:
    """Read a multipart body from `chunks` into a temporary file in `folder`: the file field's
    bytes (at most `limit`) and the short fields. Nothing is left in `folder` when it raises."""
    boundary = multipart_boundary(content_type)
    form = _Form(limit)
    callbacks = {
        "on_part_begin": form.on_part_begin,
        "on_header_field": form.on_header_field,
        "on_header_value": form.on_header_value,
        "on_header_end": form.on_header_end,
        "on_headers_finished": form.on_headers_finished,
        "on_part_data": form.on_part_data,
        "on_part_end": form.on_part_end,
    }
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=folder)
    path = Path(name)
    out: IO[bytes] = os.fdopen(descriptor, "wb")
    try:
        try:
            parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
            async for chunk in chunks:
                parser.write(chunk)
                if form.pending:
                    pieces, form.pending = form.pending, []
                    await asyncio.to_thread(out.writelines, pieces)
            parser.finalize()
        except FormParserError as exc:
            raise BadRequest(f"The multipart body is malformed ({exc}); {_HOW}.") from None
        finally:
            out.close()
        if form.file is None:
            raise InvalidInput(f"Invalid request: file is required; {_HOW}.")
        if not form.file_ended:
            raise BadRequest(f"The multipart body ended inside the file; {_HOW}.")
        return ReceivedFile(
            path=path,
            size=form.file_size,
            filename=form.file.filename or "",
            content_type=form.file.content_type,
            fields=form.fields,
        )
    except BaseException:
        _remove(path)
        raise


def clean_filename(raw: str) -> str:
    """A name safe to show and store: no folders, no control characters, at most 255
    characters (the extension kept), "upload" when nothing is left."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = " ".join(name.split()).strip(" .")
    if len(name) > 255:
        suffix = Path(name).suffix
        suffix = suffix if len(suffix) <= 16 else ""
        name = name[: 255 - len(suffix)].rstrip(" .") + suffix
    return name or "upload"


def source_extension(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return suffix if suffix in MEDIA_EXTENSIONS else ".bin"


def _content_type(received: ReceivedFile, extension: str) -> str:
    given = received.content_type.split(";", 1)[0].strip().lower()
    if given.startswith(("audio/", "video/")):
        return given
    guessed, _ = mimetypes.guess_type(f"source{extension}")
    return guessed or "application/octet-stream"


@dataclass(frozen=True)
class UploadOptions:
    room_id: str | None
    language: str  # "" = TRANSCRIBE_LANGUAGE, "auto" or a code
    speakers: str  # "" = not told, else a count


async def _options(session: AsyncSession, user: User, fields: dict[str, str]) -> UploadOptions:
    room_id = None
    if fields.get("room"):
        room_id = (await room_of(session, user, fields["room"], "room")).id
    language = fields.get("language", "").lower()
    if language and not _LANGUAGE.match(language):
        raise InvalidInput(
            f"Invalid request: language: give a code such as en or de, or auto to detect it "
            f"(got {fields['language']!r})."
        )
    speakers = fields.get("speakers", "")
    if speakers and not (speakers.isdigit() and 1 <= int(speakers) <= MAX_SPEAKERS):
        raise InvalidInput(
            f"Invalid request: speakers: give how many people speak, a whole number from 1 to "
            f"{MAX_SPEAKERS} (got {speakers!r})."
        )
    return UploadOptions(room_id, language, str(int(speakers)) if speakers else "")


async def create_upload(
    session: AsyncSession,
    user: User,
    received: ReceivedFile,
    *,
    derived: Storage,
    jobs: JobQueue,
) -> Transcript:
    """Store the received file as the source of a new transcript, create the transcript
    (`processing`) and enqueue its job. On any failure what was stored is removed again; a
    queue that refuses the job is a 503. The temporary file is the caller's to discard."""
    options = await _options(session, user, received.fields)
    transcript_id = new_id("trn")
    prefix = transcript_prefix(derived, transcript_id)
    filename = clean_filename(received.filename)
    extension = source_extension(filename)
    source_key = f"{prefix}/source{extension}"
    await derived.upload(source_key, received.path, _content_type(received, extension))
    committed = False
    try:
        transcript = Transcript(
            id=transcript_id,
            owner_id=user.id,
            room_id=options.room_id,
            source="upload",
            status=TranscriptStatus.processing.value,
            filename=filename,
            source_key=source_key,
            storage_prefix=prefix,
            steps={},
        )
        session.add(transcript)
        await session.commit()
        committed = True
        try:
            # Celery's send_task blocks on the broker: keep it off the event loop.
            await asyncio.to_thread(
                jobs.enqueue, PROCESS_UPLOAD, transcript_id, options.language, options.speakers
            )
        except Exception as exc:
            _log.warning("upload job not enqueued", transcript_id=transcript_id, error=str(exc))
            raise ServiceUnavailable(
                f"The job queue did not take the upload's job ({type(exc).__name__}); nothing "
                "was kept. Try again in a moment; if it keeps failing, check that the broker "
                "(CELERY_BROKER_URL or REDIS_URL) answers.",
                headers={"Retry-After": "5"},
            ) from None
    except BaseException:
        if committed:
            await session.delete(transcript)
            await session.commit()
        await derived.delete(source_key)
        raise
    _log.info(
        "upload stored",
        transcript_id=transcript_id,
        size=received.size,
        filename=filename,
        key=source_key,
    )
    return transcript


def uploads_folder(data_dir: Path) -> Path:
    """Where files being received wait (DATA_DIR/uploads)."""
    return data_dir / UPLOADS_FOLDER


@contextlib.asynccontextmanager
async def received_upload(
    chunks: AsyncIterator[bytes], content_type: str | None, *, limit: int, data_dir: Path
) -> AsyncIterator[ReceivedFile]:
    """receive_file(), its temporary file removed when the block ends, however it ends."""
    received = await receive_file(
        chunks, content_type, limit=limit, folder=uploads_folder(data_dir)
    )
    try:
        yield received
    finally:
        received.discard()
