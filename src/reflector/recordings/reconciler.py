"""The bucket reconciler: finds recordings no announcement told us about (a lost SQS message,
a webhook that never came) and feeds them to the intake; also re-enqueues stuck jobs."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from reflector.logs import get_logger
from reflector.platforms.whereby.recordings import is_recording_key
from reflector.recordings.intake import Intake
from reflector.recordings.models import Recording
from reflector.recordings.objects import Source, StoredObject
from reflector.recordings.storage import ListingDenied, Storage

_log = get_logger("reflector.recordings.reconciler")

STUCK_AFTER = timedelta(minutes=15)


class Reconciler:
    def __init__(self, engine: AsyncEngine, storage: Storage, bucket: str, intake: Intake) -> None:
        self.engine = engine
        self.storage = storage
        self.bucket = bucket
        self.intake = intake
        # The Whereby guide's IAM policy grants GetObject but not ListBucket: once refused,
        # say so once and stop asking.
        self.listing_denied = False

    async def run_once(self) -> int:
        """One pass; the number of recordings found that had no row."""
        requeued = await self.intake.requeue_stale(STUCK_AFTER)
        if requeued:
            _log.warning("re-enqueued recordings whose job never started", count=requeued)
        if self.listing_denied:
            return 0
        async with self.engine.connect() as conn:
            known = set(
                (
                    await conn.execute(select(Recording.key).where(Recording.bucket == self.bucket))
                ).scalars()
            )
        found = 0
        try:
            async for key in self.storage.list_keys():
                if key in known or not is_recording_key(key):
                    continue
                received = await self.intake.receive(
                    StoredObject(self.bucket, key), Source.reconciler
                )
                found += received is not None and received.created
        except ListingDenied as exc:
            self.listing_denied = True
            _log.warning(
                "cannot list the recording bucket, so the reconciler stops; recordings still "
                "arrive through SQS and webhooks. Grant s3:ListBucket to enable it.",
                storage=self.storage.label,
                error=str(exc),
            )
        if found:
            _log.info("reconciler found recordings", count=found, storage=self.storage.label)
        return found
