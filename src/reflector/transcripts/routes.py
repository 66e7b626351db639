"""The /v1/transcripts API. Who may read and change what: transcripts.access."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ValidationError

from reflector.auth.dependencies import CurrentUser, OptionalUser
from reflector.db.base import utcnow
from reflector.deps import SessionDep
from reflector.errors import Conflict, InvalidInput, NotFound
from reflector.jobs.queue import JobQueue
from reflector.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from reflector.pipeline.export import EXPORT_FORMATS
from reflector.pipeline.runner import AudioOutput
from reflector.pipeline.types import TranscriptDocument
from reflector.recordings.storage import ObjectMissing, Storage, recording_storage
from reflector.retention import deletion as retention
from reflector.retention.notices import audio_gone
from reflector.settings import Settings
from reflector.transcripts import service
from reflector.transcripts.access import readable_transcript
from reflector.transcripts.media import attachment, range_response
from reflector.transcripts.models import Transcript, TranscriptStatus
from reflector.transcripts.schemas import (
    StatusName,
    TranscriptOut,
    TranscriptSummary,
    TranscriptUpdate,
    Waveform,
)
from reflector.transcripts.uploads import MAX_SPEAKERS, create_upload, received_upload

router = APIRouter(prefix="/v1/transcripts", tags=["transcripts"])

PLAYBACK_MEDIA_TYPE = "audio/mp4"

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The recording: any audio or video file, at most "
                            "MAX_UPLOAD_BYTES.",
                        },
                        "room": {
                            "type": "string",
                            "description": "Id or name of one of your rooms to file it under.",
                        },
                        "language": {
                            "type": "string",
                            "description": "Spoken language (en, de, ...) or auto; default "
                            "TRANSCRIBE_LANGUAGE.",
                        },
                        "speakers": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_SPEAKERS,
                            "description": "How many people speak, when you know.",
                        },
                    },
                }
            }
        },
    }
}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _derived(request: Request) -> Storage:
    storage: Storage = request.app.state.derived_storage
    return storage


def _recordings(request: Request) -> Callable[[], Storage]:
    """The recording storage, made on first use and kept: an S3 client is costly to make, and
    most requests never need it."""

    def get() -> Storage:
        storage: Storage | None = getattr(request.app.state, "recording_storage", None)
        if storage is None:
            storage = recording_storage(_settings(request))
            request.app.state.recording_storage = storage
        return storage

    return get


def _jobs(request: Request) -> JobQueue:
    jobs: JobQueue = request.app.state.jobs
    return jobs


def _utc(moment: datetime | None) -> datetime | None:
    # A time without a zone is read as UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@router.get("", summary="Your transcripts, newest first (summaries, without their content)")
async def list_transcripts(
    user: CurrentUser,
    session: SessionDep,
    room: Annotated[
        str | None, Query(max_length=100, description="Id or name of one of your rooms.")
    ] = None,
    status: Annotated[StatusName | None, Query()] = None,
    since: Annotated[
        datetime | None, Query(description="Created at or after this time (UTC if no zone).")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Created before this time (UTC if no zone).")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[TranscriptSummary]:
    rows, next_cursor = await service.list_transcripts(
        session,
        user,
        room=room,
        status=status,
        since=_utc(since),
        until=_utc(until),
        limit=limit,
        cursor=cursor,
    )
    return Page[TranscriptSummary](
        items=[TranscriptSummary.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Upload a recording to transcribe (multipart/form-data)",
    description="Fields: `file` (required), `room`, `language`, `speakers`. Answers 202 with "
    "the new transcript (`processing`); follow it with GET /v1/transcripts/{id}. 413 over "
    "MAX_UPLOAD_BYTES, 422 for an empty file or a bad field, 503 when the job queue is down "
    "(nothing is kept then).",
    openapi_extra=_UPLOAD_BODY,
)
async def upload_transcript(
    request: Request, user: CurrentUser, session: SessionDep
) -> TranscriptOut:
    settings = _settings(request)
    async with received_upload(
        request.stream(),
        request.headers.get("content-type"),
        limit=settings.MAX_UPLOAD_BYTES,
        data_dir=settings.DATA_DIR,
    ) as received:
        transcript = await create_upload(
            session, user, received, derived=_derived(request), jobs=_jobs(request)
        )
    return TranscriptOut.of(transcript)


@router.get(
    "/{transcript_id}",
    summary="One transcript: status, speakers, topics, summaries (yours or shared with you)",
)
async def get_transcript(
    transcript_id: str, user: OptionalUser, session: SessionDep
) -> TranscriptOut:
    return TranscriptOut.of(await readable_transcript(session, user, transcript_id))


@router.patch(
    "/{transcript_id}",
    summary="Change the title, the share mode, speaker names; merge speakers (owner only)",
)
async def update_transcript(
    transcript_id: str, data: TranscriptUpdate, user: CurrentUser, session: SessionDep
) -> TranscriptOut:
    transcript = await service.update_transcript(session, user, transcript_id, data)
    await session.commit()
    return TranscriptOut.of(transcript)


@router.delete(
    "/{transcript_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a transcript and its derived files (owner only)",
    description="Removes the transcript and every file derived for it (audio, step outputs, "
    "exports, an uploaded file). Its raw recording in the recording bucket goes too when the "
    "room has a recording retention policy (the room's retention_recording_days, else "
    "RETENTION_RECORDING_DAYS; any number of days), and is recorded in the retention audit "
    "log; without one the raw recording is kept. 503 when the raw recording cannot be "
    "deleted (nothing is changed then).",
)
async def delete_transcript(
    transcript_id: str, request: Request, user: CurrentUser, session: SessionDep
) -> Response:
    await retention.delete_transcript(
        session,
        user,
        transcript_id,
        derived=_derived(request),
        recordings=_recordings(request),
        settings=_settings(request),
        now=utcnow(),
    )
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _ended_document(transcript: Transcript) -> TranscriptDocument:
    if transcript.status == TranscriptStatus.ended.value and transcript.document:
        return TranscriptDocument.model_validate_json(transcript.document)
    if transcript.status == TranscriptStatus.error.value:
        raise Conflict(
            f"Transcript '{transcript.id}' has nothing to export: its processing failed "
            f"({transcript.error})."
        )
    raise Conflict(
        f"Transcript '{transcript.id}' is still being processed (step {transcript.step}); "
        "export it once its status is 'ended'."
    )


@router.get(
    "/{transcript_id}/export",
    response_class=Response,
    summary="The transcript as a file: json, vtt, srt, md or txt",
    responses={200: {"content": {spec.media_type: {} for spec in EXPORT_FORMATS.values()}}},
)
async def export_transcript(
    transcript_id: str,
    user: OptionalUser,
    session: SessionDep,
    format: Annotated[
        str, Query(max_length=20, description=f"One of {', '.join(EXPORT_FORMATS)}.")
    ] = "json",
) -> Response:
    transcript = await readable_transcript(session, user, transcript_id)
    spec = EXPORT_FORMATS.get(format.strip().lower())
    if spec is None:
        raise InvalidInput(
            f"Invalid request: query parameter format: unknown format {format!r}; choose one "
            f"of {', '.join(EXPORT_FORMATS)}."
        )
    doc = _ended_document(transcript)
    return Response(
        spec.render(doc).encode(),
        media_type=spec.media_type,
        headers={
            "Content-Disposition": attachment(doc.title, transcript.id, spec.extension),
        },
    )


class _StoredAudio(BaseModel):
    value: AudioOutput


async def _audio_step(derived: Storage, transcript: Transcript) -> AudioOutput | None:
    """The audio step's output (duration, peaks, keys), once that step has finished."""
    key = (transcript.steps or {}).get("audio")
    if not key:
        return None
    try:
        return _StoredAudio.model_validate_json(await derived.read(str(key))).value
    except (ObjectMissing, ValidationError):
        return None


def _not_ready(transcript: Transcript, what: str) -> Conflict:
    if transcript.status == TranscriptStatus.error.value:
        return Conflict(
            f"Transcript '{transcript.id}' has no {what}: its processing failed "
            f"({transcript.error})."
        )
    return Conflict(
        f"The {what} of transcript '{transcript.id}' is not ready yet (step "
        f"{transcript.step or 'waiting'}); try again once its audio step has finished."
    )


# HEAD answers the same headers without the body; kept out of the docs (one operation).
@router.head(
    "/{transcript_id}/audio",
    response_class=Response,
    include_in_schema=False,
    operation_id="transcript_audio_head",
)
@router.get(
    "/{transcript_id}/audio",
    response_class=Response,
    summary="The recording's audio for playback (audio/mp4), with HTTP range requests",
    description="`Range: bytes=a-b`, `bytes=a-` or `bytes=-n` answer 206 with those bytes; "
    "a range past the end 416. Several ranges in one request are ignored: 200 with the whole "
    "file.",
    responses={200: {"content": {PLAYBACK_MEDIA_TYPE: {}}}, 206: {"description": "A range"}},
)
async def transcript_audio(
    transcript_id: str, request: Request, user: OptionalUser, session: SessionDep
) -> Response:
    transcript = await readable_transcript(session, user, transcript_id)
    if transcript.audio_deleted_at is not None:
        raise await audio_gone(session, transcript.id, transcript.audio_deleted_at)
    derived = _derived(request)
    key = transcript.playback_key
    if key is None:
        audio = await _audio_step(derived, transcript)
        if audio is None:
            raise _not_ready(transcript, "audio")
        key = audio.playback
    size = await derived.size(key)
    if size is None:
        raise NotFound(
            f"The audio of transcript '{transcript.id}' is missing from storage; it may have "
            "been removed by hand."
        )
    return range_response(
        derived,
        key,
        size,
        request.headers.get("range"),
        media_type=PLAYBACK_MEDIA_TYPE,
        head=request.method == "HEAD",
    )


@router.get(
    "/{transcript_id}/waveform",
    summary="Peaks of the audio for drawing its waveform, and its duration in seconds",
)
async def transcript_waveform(
    transcript_id: str, request: Request, user: OptionalUser, session: SessionDep
) -> Waveform:
    transcript = await readable_transcript(session, user, transcript_id)
    # The peaks are stored with the audio, and went with it.
    if transcript.audio_deleted_at is not None:
        raise await audio_gone(session, transcript.id, transcript.audio_deleted_at)
    audio = await _audio_step(_derived(request), transcript)
    if audio is None:
        raise _not_ready(transcript, "waveform")
    return Waveform(duration=audio.duration, peaks=audio.peaks)
