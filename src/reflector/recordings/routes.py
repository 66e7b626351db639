from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status

from reflector.auth.dependencies import CurrentUser
from reflector.deps import SessionDep
from reflector.errors import Conflict
from reflector.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from reflector.recordings import service
from reflector.recordings.intake import Intake
from reflector.recordings.schemas import RecordingOut

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
