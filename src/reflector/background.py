"""Work the server does on its own, once per deployment: each loop runs only while this
process holds its lease in the database, so several replicas do not repeat each other."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from reflector.db.base import utcnow
from reflector.jobs.leader import default_holder, run_while_leader
from reflector.logs import get_logger
from reflector.meetings.lifecycle import close_finished_meetings
from reflector.platforms.base import VideoPlatform
from reflector.platforms.whereby.recordings import is_recording_key
from reflector.recordings.announcements import recording_bucket
from reflector.recordings.intake import Intake
from reflector.recordings.objects import Source, StoredObject
from reflector.recordings.reconciler import Reconciler
from reflector.recordings.sqs import SqsConsumer, sqs_wait_seconds
from reflector.recordings.storage import Storage, derived_storage
from reflector.retention.apply import Deletion, run_retention
from reflector.room_webhooks.dispatcher import deliver_due
from reflector.settings import Settings
from reflector.web.session import purge_sessions

_log = get_logger("reflector.background")

# A lease outlives a 20 s SQS long poll comfortably, and is taken over within a minute when
# its holder dies.
LEASE_SECONDS = 60.0
SESSION_PURGE_SECONDS = 3600.0


@dataclass
class Background:
    settings: Settings
    engine: AsyncEngine
    factory: async_sessionmaker[AsyncSession]
    platforms: dict[str, VideoPlatform]
    intake: Intake
    recordings: Storage

    def loops(self, stop: asyncio.Event) -> list[Awaitable[None]]:
        holder = default_holder()

        def leased(name: str, work: Callable[[], Awaitable[None]], every: float) -> Awaitable[None]:
            return run_while_leader(
                self.factory, name, holder, LEASE_SECONDS, work, stop, interval=every
            )

        settings = self.settings
        bucket, _prefix = recording_bucket(settings)
        reconciler = Reconciler(self.engine, self.recordings, bucket, self.intake)
        loops = [
            leased(
                "meeting-lifecycle",
                self._close_meetings,
                settings.MEETING_LIFECYCLE_INTERVAL_SECONDS,
            ),
            leased(
                "recording-reconciler",
                _ignoring_result(reconciler.run_once),
                settings.RECONCILE_INTERVAL_SECONDS,
            ),
            leased("web-session-purge", self._purge_sessions, SESSION_PURGE_SECONDS),
            # Always on: a room may set retention even when the RETENTION_* settings do not.
            leased(
                "retention",
                _ignoring_result(self._retention_pass(derived_storage(settings))),
                settings.RETENTION_INTERVAL_SECONDS,
            ),
        ]
        if settings.AWS_PROCESS_RECORDING_QUEUE_URL is not None:
            consumer = SqsConsumer(
                str(settings.AWS_PROCESS_RECORDING_QUEUE_URL),
                intake=self._from_sqs,
                wait_seconds=sqs_wait_seconds(settings.SQS_POLLING_TIMEOUT_SECONDS),
                is_recording_key=is_recording_key,
                endpoint_url=settings.AWS_ENDPOINT_URL,
                region_name=settings.AWS_DEFAULT_REGION,
                metrics_engine=self.engine,
            )
            # Polls back to back: each long poll already waits for messages.
            loops.append(leased("sqs-consumer", _ignoring_result(consumer.poll_once), 0.0))

        async def room_webhooks() -> None:
            # One client for the loop's life, so connections to receivers are reused.
            async with httpx.AsyncClient() as http:

                async def deliver() -> None:
                    await deliver_due(self.engine, http, settings, utcnow())

                every = settings.ROOM_WEBHOOK_INTERVAL_SECONDS
                await leased("room-webhooks", deliver, every)

        loops.append(room_webhooks())
        return loops

    async def _close_meetings(self) -> None:
        async with self.factory() as session:
            await close_finished_meetings(session, self.platforms, utcnow())
            await session.commit()

    async def _purge_sessions(self) -> None:
        async with self.factory() as session:
            purged = await purge_sessions(session, utcnow())
            await session.commit()
        if purged:
            _log.info("expired web sessions purged", count=purged)

    def _retention_pass(self, derived: Storage) -> Callable[[], Awaitable[list[Deletion]]]:
        def run() -> Awaitable[list[Deletion]]:
            return run_retention(
                self.engine, self.settings, recordings=self.recordings, derived=derived
            )

        return run

    async def _from_sqs(self, obj: StoredObject) -> None:
        await self.intake.receive(obj, Source.sqs)


def _ignoring_result(work: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
    """The lease loop takes work returning None; these passes return counts for their callers."""

    async def run() -> None:
        await work()

    return run
