"""Running the pipeline for one transcript and storing its result: shared by the recording job
(recordings.processing) and the upload job (process_upload here).

Each step's output is stored under the transcript's `storage_prefix` in derived storage before
the next step starts, and the row's `step`/`steps` follow along; so a job that is delivered
again (its worker died) resumes at the step it was in. The end is written in one transaction:
the transcript `ended` with its document and its search index entry (or `error` with a
sentence), together with whatever the caller adds through `on_ended`/`on_failed` (the
recording job marks its recording there).

A transcript deleted while its job runs (DELETE /v1/transcripts/{id}) stops the job at the next
step boundary; the objects the job wrote meanwhile are removed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reflector.db.base import utcnow
from reflector.logs import get_logger
from reflector.metrics import counters
from reflector.pipeline.runner import (
    AudioOutput,
    Backends,
    FetchSource,
    Pipeline,
    PipelineError,
    PipelineResult,
    Request,
)
from reflector.pipeline.store import StorageStore
from reflector.pipeline.types import TranscriptDocument
from reflector.recordings.storage import ObjectMissing, Storage
from reflector.transcripts.models import Transcript, TranscriptStatus
from reflector.transcripts.search import index_transcript

_log = get_logger("reflector.transcripts.processing")

# The task's name (jobs.tasks registers it; the name routes it to the "audio" queue).
PROCESS_UPLOAD = "reflector.audio.process_upload"

OnEnded = Callable[[AsyncConnection, PipelineResult], Awaitable[None]]
OnFailed = Callable[[AsyncConnection, str], Awaitable[None]]


class TranscriptDeleted(Exception):
    """The transcript's row went away while its job ran."""


@dataclass(frozen=True)
class Outcome:
    status: str  # "ended", "error", or "deleted"
    error: str | None = None
    document: TranscriptDocument | None = None
    audio: AudioOutput | None = None


def transcript_prefix(derived: Storage, transcript_id: str) -> str:
    """Where a transcript's derived objects live (its `storage_prefix`), without a final /."""
    return f"{derived.prefix}transcripts/{transcript_id}"


async def delete_objects(derived: Storage, transcript: Transcript) -> int:
    """Remove every derived object of the transcript (step outputs, audio, exports, the
    uploaded source); returns how many were removed. The raw recording is not derived and
    stays where it is."""
    prefix = transcript.storage_prefix.rstrip("/") + "/"
    keys = {
        key
        async for key in derived.list_keys(prefix.removeprefix(derived.prefix))
        if key.startswith(prefix)
    }
    # Keys recorded on the row, in case one was ever stored outside the prefix.
    for key in (transcript.source_key, transcript.audio_key, transcript.playback_key):
        if key:
            keys.add(key)
    for key in sorted(keys):
        await derived.delete(key)
    return len(keys)


async def measure_stored_bytes(derived: Storage, storage_prefix: str) -> int:
    """Bytes of the derived objects under a transcript's `storage_prefix` now (objects that
    vanish while being measured count 0)."""
    prefix = storage_prefix.rstrip("/") + "/"
    total = 0
    async for key in derived.list_keys(prefix.removeprefix(derived.prefix)):
        if key.startswith(prefix):
            total += await derived.size(key) or 0
    return total


async def run_transcript(
    transcript_id: str,
    *,
    engine: AsyncEngine,
    derived: Storage,
    backends: Backends,
    fetch_source: FetchSource,
    request: Request,
    workdir: Path | None = None,
    missing_source: str,
    retry_hint: str,
    on_ended: OnEnded | None = None,
    on_failed: OnFailed | None = None,
) -> Outcome:
    """Run the pipeline for the transcript (which the caller has put in `processing`) and
    store the result.

    `missing_source` is the error sentence for a source object that is gone; `retry_hint`
    ends the sentence of an unexpected failure (what the user should do once it is fixed).
    """
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(Transcript.storage_prefix, Transcript.owner_id).where(
                    Transcript.id == transcript_id
                )
            )
        ).first()
    if row is None:
        _log.info("transcript deleted before its job ran", transcript_id=transcript_id)
        return Outcome("deleted")
    prefix: str = row.storage_prefix
    owner_id: str = row.owner_id

    # perf_counter() when each step that runs (not one reused from storage) started.
    running: dict[str, float] = {}

    async def on_step(step: str, key: str | None) -> None:
        finished = time.perf_counter()
        async with engine.begin() as conn:
            row = (
                await conn.execute(select(Transcript.steps).where(Transcript.id == transcript_id))
            ).first()
            if row is None:
                raise TranscriptDeleted(transcript_id)
            steps = dict(row.steps or {})
            if key is not None:
                steps[step] = key
            await conn.execute(
                update(Transcript)
                .where(Transcript.id == transcript_id)
                .values(step=step, steps=steps)
            )
        if key is None:
            running[step] = time.perf_counter()
        elif step in running:
            family = counters.PIPELINE_STEP_DURATION
            await counters.observe(
                engine, family.name, {"step": step}, finished - running.pop(step), family.buckets
            )

    folder = Path(tempfile.mkdtemp(prefix=f"{transcript_id}-", dir=workdir))
    pipeline = Pipeline(backends, StorageStore(derived, prefix), folder, on_step=on_step)
    try:
        result = await pipeline.run(fetch_source, request)
    except TranscriptDeleted:
        return await _deleted(derived, prefix, transcript_id)
    except (PipelineError, ObjectMissing) as exc:
        error = missing_source if isinstance(exc, ObjectMissing) else str(exc)
        return await _fail(engine, transcript_id, error, on_failed)
    except Exception as exc:
        # A bug or an outage, not the file: say so, keep the worker serving the next job.
        _log.exception("transcript job crashed", transcript_id=transcript_id)
        error = (
            f"Processing stopped with an unexpected error ({type(exc).__name__}: {exc}); "
            f"{retry_hint}"
        )
        return await _fail(engine, transcript_id, error, on_failed)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    doc = result.document
    stored_bytes = await _stored_bytes(derived, prefix, transcript_id)
    async with engine.begin() as conn:
        ended = await conn.execute(
            update(Transcript)
            .where(Transcript.id == transcript_id)
            .values(
                status=TranscriptStatus.ended.value,
                error=None,
                title=doc.title,
                short_summary=doc.short_summary,
                language=doc.language,
                duration=doc.duration,
                document=doc.model_dump_json(),
                audio_key=result.audio.wav,
                playback_key=result.audio.playback,
                ended_at=utcnow(),
                stored_bytes=stored_bytes,
            )
        )
        # No row: deleted during the last step.
        still_there = ended.rowcount > 0
        if still_there:
            await index_transcript(conn, transcript_id, owner_id, doc)
            if on_ended is not None:
                await on_ended(conn, result)
    if not still_there:
        return await _deleted(derived, prefix, transcript_id)
    _log.info(
        "transcript ended",
        transcript_id=transcript_id,
        duration=doc.duration,
        reused=result.reused,
    )
    return Outcome("ended", document=doc, audio=result.audio)


async def _stored_bytes(derived: Storage, prefix: str, transcript_id: str) -> int | None:
    """measure_stored_bytes, or None (unknown, with a warning) when storage did not answer:
    a number for /metrics must not fail a finished transcript."""
    try:
        return await measure_stored_bytes(derived, prefix)
    except Exception as exc:
        _log.warning(
            "measuring the transcript's stored bytes failed; stored_bytes left unknown",
            transcript_id=transcript_id,
            error=f"{exc.__class__.__name__}: {exc}",
        )
        return None


async def _fail(
    engine: AsyncEngine, transcript_id: str, error: str, on_failed: OnFailed | None
) -> Outcome:
    async with engine.begin() as conn:
        await conn.execute(
            update(Transcript)
            .where(Transcript.id == transcript_id)
            .values(status=TranscriptStatus.error.value, error=error, ended_at=utcnow())
        )
        if on_failed is not None:
            await on_failed(conn, error)
    _log.warning("transcript failed", transcript_id=transcript_id, error=error)
    return Outcome("error", error=error)


async def _deleted(derived: Storage, prefix: str, transcript_id: str) -> Outcome:
    """Remove what this job wrote after the transcript was deleted."""
    folder = prefix.rstrip("/") + "/"
    keys = [key async for key in derived.list_keys(folder.removeprefix(derived.prefix))]
    for key in keys:
        await derived.delete(key)
    _log.info("transcript deleted while its job ran", transcript_id=transcript_id)
    return Outcome("deleted")


async def process_upload(
    transcript_id: str,
    *,
    engine: AsyncEngine,
    derived: Storage,
    backends: Backends,
    language: str | None = None,
    num_speakers: int | None = None,
    workdir: Path | None = None,
) -> str:
    """The upload job: turn the uploaded file of a transcript into its content. Returns the
    transcript's status afterwards ("skipped" when there was nothing to do: it ended, failed
    or was deleted already). Idempotent: a redelivered job resumes at the step it was in."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(Transcript.status, Transcript.source_key).where(
                    Transcript.id == transcript_id
                )
            )
        ).first()
    if row is None or row.status != TranscriptStatus.processing.value:
        _log.info("nothing to do for this upload", transcript_id=transcript_id)
        return "skipped"
    source_key: str | None = row.source_key
    if source_key is None:
        outcome = await _fail(
            engine, transcript_id, "The transcript has no uploaded file; upload it again.", None
        )
        return outcome.status

    async def fetch_source(into: Path) -> Path:
        assert source_key is not None
        source = into / source_key.rsplit("/", 1)[-1]
        await derived.download(source_key, source)
        return source

    outcome = await run_transcript(
        transcript_id,
        engine=engine,
        derived=derived,
        backends=backends,
        fetch_source=fetch_source,
        request=Request(language=language, num_speakers=num_speakers),
        workdir=workdir,
        missing_source="The uploaded file is no longer in storage; upload it again.",
        retry_hint="upload the file again once it is fixed.",
    )
    return outcome.status if outcome.status != "deleted" else "skipped"
