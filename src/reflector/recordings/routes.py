from __future__ import annotations

import asyncio
import mimetypes
from pathlib import PurePosixPath
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Query, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reflector.auth.dependencies import CurrentUser
from reflector.auth.models import User
from reflector.deps import SessionDep, SettingsDep
from reflector.errors import Conflict, NotFound
from reflector.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from reflector.recordings import service
from reflector.recordings.intake import Intake
from reflector.recordings.models import Recording
from reflector.recordings.schemas import RecordingOut
from reflector.recordings.storage import Storage, recording_storage
from reflector.retention.notices import recording_file_gone
from reflector.rooms.models import Room
from reflector.transcripts.media import attachment, range_response

router = APIRouter(prefix="/v1/recordings", tags=["recordings"])

StatusFilter = Literal["pending", "processing", "completed", "failed", "unmatched"]


@router.get("", summary="Recordings of your rooms (admins: all), newest first")
async def list_recordings(
    user: CurrentUser,
    session: SessionDep,
    status: Annotated[StatusFilter | None, Query()] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[RecordingOut]:
    rows, next_cursor = await service.list_recordings(
        session, user, status=status, limit=limit, cursor=cursor
    )
    return Page[RecordingOut](
        items=[RecordingOut.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@router.get("/{recording_id}", summary="One recording with its status and error")
async def get_recording(recording_id: str, user: CurrentUser, session: SessionDep) -> RecordingOut:
    return RecordingOut.model_validate(await service.get_recording(session, user, recording_id))


@router.post(
    "/{recording_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Process a failed or unmatched recording again",
)
async def retry_recording(
    recording_id: str, request: Request, user: CurrentUser, session: SessionDep
) -> RecordingOut:
    recording = await service.get_recording(session, user, recording_id)
    intake: Intake = request.app.state.intake
    if not await intake.retry(recording.id):
        raise Conflict(
            f"Recording {recording.id} is {recording.status}; only failed or unmatched "
            "recordings can be retried."
        )
    await session.refresh(recording)
    return RecordingOut.model_validate(recording)


@router.get(
    "/{recording_id}/download",
    summary="The recording's file: a redirect to a short-lived S3 link, or the file itself",
    description="For the owner of the recording's room only. With S3 storage: 307 to a signed "
    "link valid PRESIGNED_URL_SECONDS; with local storage: the file (Range requests work). "
    "410 when retention deleted the file.",
    response_class=Response,
    responses={
        200: {"description": "The file (local storage)"},
        307: {"description": "Redirect to a signed S3 link"},
        410: {"description": "Retention deleted the file"},
    },
)
async def download_recording(
    recording_id: str,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    recording = await _owned_recording(session, user, recording_id)
    if recording.object_deleted_at is not None:
        raise await recording_file_gone(session, recording.id, recording.object_deleted_at)
    storage = await _recordings(request.app)
    size = await storage.size(recording.key)
    if size is None:
        raise NotFound(
            f"The file of recording {recording.id} is not in {storage.label} (key "
            f"{recording.key!r}); it was removed from the bucket by something other than "
            "Reflector."
        )
    # No caching anywhere: the link expires, and the file is only for this user.
    headers = {"Cache-Control": "private, no-store"}
    url = await storage.presigned_url(recording.key, settings.PRESIGNED_URL_SECONDS)
    if url is not None:
        return RedirectResponse(
            url, status_code=status.HTTP_307_TEMPORARY_REDIRECT, headers=headers
        )
    name = PurePosixPath(recording.key)
    headers["Content-Disposition"] = attachment(
        name.stem, "recording", name.suffix.lstrip(".") or "mp4"
    )
    return range_response(
        storage,
        recording.key,
        size,
        request.headers.get("range"),
        media_type=mimetypes.guess_type(name.name)[0] or "application/octet-stream",
        headers=headers,
    )


async def _owned_recording(session: AsyncSession, user: User, recording_id: str) -> Recording:
    """The recording, when `user` owns its room; admins too get 404 for others' files."""
    recording = await session.scalar(
        select(Recording)
        .join(Room, Room.id == Recording.room_id)
        .where(Recording.id == recording_id, Room.owner_id == user.id)
    )
    if recording is None:
        raise NotFound(f"No recording '{recording_id}' among yours; GET /v1/recordings lists them.")
    return recording


async def _recordings(app: FastAPI) -> Storage:
    """The recording storage, made on first use: finding AWS credentials may block."""
    storage: Storage | None = getattr(app.state, "recording_storage", None)
    if storage is None:
        storage = await asyncio.to_thread(recording_storage, app.state.settings)
        app.state.recording_storage = storage
    return storage
