from __future__ import annotations

from fastapi import APIRouter

from reflector.auth.dependencies import CurrentUser
from reflector.deps import SessionDep
from reflector.transcripts import service
from reflector.transcripts.schemas import TranscriptOut

router = APIRouter(prefix="/v1/transcripts", tags=["transcripts"])


@router.get("/{transcript_id}", summary="One transcript: status, speakers, topics, summaries")
async def get_transcript(
    transcript_id: str, user: CurrentUser, session: SessionDep
) -> TranscriptOut:
    return TranscriptOut.of(await service.get_transcript(session, user, transcript_id))
