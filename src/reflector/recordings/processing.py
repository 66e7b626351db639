"""The recording job: fetch the object, decode its audio, store the derived files.

Idempotent and keyed by recording id: a job for a recording that is already done, or that
another job finished meanwhile, does nothing; a job whose worker died runs again from the start
(the steps' outputs are rewritten atomically).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.db.base import utcnow
from reflector.logs import get_logger
from reflector.pipeline.audio import AudioError, decode_audio
from reflector.recordings.models import Recording, RecordingStatus
from reflector.recordings.storage import ObjectMissing, Storage

_log = get_logger("reflector.recordings.processing")

_RUNNABLE = [RecordingStatus.pending.value, RecordingStatus.processing.value]


def derived_keys(derived: Storage, recording_id: str) -> tuple[str, str]:
    folder = f"{derived.prefix}recordings/{recording_id}"
    return f"{folder}/audio.wav", f"{folder}/playback.m4a"


async def process_recording(
    recording_id: str,
    *,
    engine: AsyncEngine,
    recordings: Storage,
    derived: Storage,
    workdir: Path | None = None,
) -> str:
    """Run the job; returns the recording's status afterwards."""
    async with engine.begin() as conn:
        # "processing" is runnable too: a job redelivered after its worker died finds it so.
        claimed = (
            await conn.execute(
                update(Recording)
                .where(Recording.id == recording_id, Recording.status.in_(_RUNNABLE))
                .values(status=RecordingStatus.processing.value, attempts=Recording.attempts + 1)
                .returning(Recording.key)
            )
        ).first()
    if claimed is None:
        _log.info("nothing to do for this recording", recording_id=recording_id)
        return "skipped"
    folder = Path(tempfile.mkdtemp(prefix=f"{recording_id}-", dir=workdir))
    try:
        source = folder / ("source" + Path(claimed.key).suffix)
        await recordings.download(claimed.key, source)
        decoded = await asyncio.to_thread(decode_audio, source, folder)
        audio_key, playback_key = derived_keys(derived, recording_id)
        await derived.upload(audio_key, decoded.wav_path, "audio/wav")
        await derived.upload(playback_key, decoded.playback_path, "audio/mp4")
        values: dict[str, object] = {
            "status": RecordingStatus.completed.value,
            "error": None,
            "duration": decoded.duration,
            "audio_key": audio_key,
            "playback_key": playback_key,
            "processed_at": utcnow(),
        }
        _log.info("recording processed", recording_id=recording_id, duration=decoded.duration)
    except (AudioError, ObjectMissing) as exc:
        error = (
            f"The object {claimed.key} is no longer in {recordings.label}."
            if isinstance(exc, ObjectMissing)
            else str(exc)
        )
        values = {"status": RecordingStatus.failed.value, "error": error, "processed_at": utcnow()}
        _log.warning("recording failed", recording_id=recording_id, error=error)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    async with engine.begin() as conn:
        await conn.execute(update(Recording).where(Recording.id == recording_id).values(**values))
    return str(values["status"])
