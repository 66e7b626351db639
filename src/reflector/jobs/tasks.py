"""Celery tasks. Each is a thin, idempotent shell around an async function keyed by id; a
worker reads its settings from its environment (see jobs.worker)."""

from __future__ import annotations

import asyncio

from celery import shared_task  # type: ignore[import-untyped]

from reflector.db.engine import create_engine
from reflector.pipeline.backends import shared_backends
from reflector.recordings.intake import PROCESS_RECORDING
from reflector.recordings.processing import process_recording
from reflector.recordings.storage import derived_storage, recording_storage
from reflector.settings import settings_from_environment
from reflector.transcripts.processing import PROCESS_UPLOAD, process_upload


@shared_task(name=PROCESS_RECORDING)  # type: ignore[untyped-decorator]
def process_recording_task(recording_id: str) -> str:
    return asyncio.run(_process(recording_id))


async def _process(recording_id: str) -> str:
    settings = settings_from_environment()
    engine = create_engine(settings.database_url)
    try:
        return await process_recording(
            recording_id,
            engine=engine,
            recordings=recording_storage(settings),
            derived=derived_storage(settings),
            backends=shared_backends(settings),
            language=settings.transcribe_language,
            workdir=settings.DATA_DIR,
        )
    finally:
        await engine.dispose()


@shared_task(name=PROCESS_UPLOAD)  # type: ignore[untyped-decorator]
def process_upload_task(transcript_id: str, language: str = "", speakers: str = "") -> str:
    """`language`: a code, "auto" to detect, "" for TRANSCRIBE_LANGUAGE; `speakers`: how many
    people speak, "" when not told (arguments are strings: JobQueue sends strings)."""
    return asyncio.run(_process_upload(transcript_id, language, speakers))


async def _process_upload(transcript_id: str, language: str, speakers: str) -> str:
    settings = settings_from_environment()
    engine = create_engine(settings.database_url)
    chosen = (
        settings.transcribe_language if not language else None if language == "auto" else language
    )
    try:
        return await process_upload(
            transcript_id,
            engine=engine,
            derived=derived_storage(settings),
            backends=shared_backends(settings),
            language=chosen,
            num_speakers=int(speakers) if speakers.isdigit() else None,
            workdir=settings.DATA_DIR,
        )
    finally:
        await engine.dispose()
