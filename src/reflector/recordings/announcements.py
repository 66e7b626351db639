"""Announcements of new recordings that arrive outside SQS: Whereby's recording.finished."""

from __future__ import annotations

from reflector.platforms.base import PlatformEvent
from reflector.recordings.intake import Intake, Received
from reflector.recordings.objects import Source, StoredObject
from reflector.recordings.storage import DEFAULT_BUCKET, split_bucket
from reflector.settings import Settings


def recording_bucket(settings: Settings) -> tuple[str, str]:
    """(bucket, sub-folder prefix) recordings are written to; the local folder's name when no
    bucket is configured."""
    name = settings.RECORDING_STORAGE_AWS_BUCKET_NAME
    return split_bucket(name) if name else (DEFAULT_BUCKET, "")


async def recording_finished(
    intake: Intake, settings: Settings, event: PlatformEvent
) -> Received | None:
    """Feed a recording.finished event to the intake. Its `filename` has no sub-folder."""
    filename = event.data.get("filename")
    if not isinstance(filename, str) or not filename or "/" in filename:
        return None
    bucket, prefix = recording_bucket(settings)
    return await intake.receive(StoredObject(bucket, prefix + filename), Source.webhook)
