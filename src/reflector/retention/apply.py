"""One pass of the retention policy (retention.policy): find what is due at `now`, delete it,
and write each deletion to the audit log (retention_deletions) and the log.

Each item is its own unit: its objects are deleted first, then its row is marked (or
removed) and its audit row written in one transaction whose update only applies to a row not
marked yet, so nothing is recorded twice even if two passes race. A storage error on one item
is logged and the pass goes on; the item is still due, so the next pass tries it again.

Order within a pass: transcripts, then audio, then raw recordings. A transcript that goes
takes its audio with it, so its audio is not listed separately.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reflector.db.base import utcnow
from reflector.db.engine import create_session_factory
from reflector.logs import get_logger
from reflector.recordings.models import Recording, RecordingStatus
from reflector.recordings.storage import Storage, derived_storage, recording_storage
from reflector.retention.models import RetentionDeletion
from reflector.retention.policy import (
    Kind,
    RoomRetention,
    Rule,
    rule_for,
    shortest_days,
    stamp,
)
from reflector.rooms.models import Room
from reflector.settings import Settings
from reflector.transcripts.models import Transcript, TranscriptStatus
from reflector.transcripts.service import remove_transcript

_log = get_logger("reflector.retention")

# Said when deleting from storage fails, so the operator knows where to look.
_STORAGE_HINT = (
    "the item stays due and is tried again at the next pass; check that Reflector's "
    "credentials may delete objects there (s3:DeleteObject)"
)


@dataclass(frozen=True)
class Deletion:
    """One deletion, made or (dry run) planned."""

    kind: str  # "recording", "audio" or "transcript"
    subject_id: str  # the recording's or the transcript's id
    target: str  # where it was: s3://bucket/key, file:///..., a transcript's folder
    reason: str  # "RETENTION_RECORDING_DAYS=2 (room standup): processed 2026-11-01T10:00:00Z"

    def line(self) -> str:
        """One line for `reflector retention`: kind, id, target, reason, tab-separated."""
        return "\t".join((self.kind, self.subject_id, self.target, self.reason))


def object_url(storage: Storage, key: str) -> str:
    """Where an object of `storage` is, for people: s3://bucket/key or file:///folder/key."""
    base = storage.label.removesuffix(storage.prefix)
    return (base if base.endswith("/") else base + "/") + key


class Deletions(list[Deletion]):
    """The deletions of a pass, and how many failed (logged; tried again next pass)."""

    failed: int = 0


async def record(conn: AsyncConnection, deletion: Deletion, now: datetime) -> None:
    """Write the deletion to the audit log, in the caller's transaction (then `logged`)."""
    await conn.execute(
        insert(RetentionDeletion).values(
            kind=deletion.kind,
            subject_id=deletion.subject_id,
            target=deletion.target,
            reason=deletion.reason,
            deleted_at=now,
        )
    )


def logged(deletion: Deletion) -> Deletion:
    """Log the deletion (once its transaction committed) with the audit row's fields."""
    _log.info(
        "retention deleted",
        kind=deletion.kind,
        subject_id=deletion.subject_id,
        target=deletion.target,
        reason=deletion.reason,
    )
    return deletion


def _failed(deletion: Deletion, exc: Exception) -> None:
    _log.warning(
        "retention deletion failed",
        kind=deletion.kind,
        subject_id=deletion.subject_id,
        target=deletion.target,
        reason=deletion.reason,
        error=f"{type(exc).__name__}: {exc}",
        hint=_STORAGE_HINT,
    )


async def load_rooms(
    conn: AsyncConnection, ids: Collection[str] | None = None
) -> dict[str, RoomRetention]:
    """Rooms' retention overrides by room id: the rooms `ids` names, or all of them."""
    query = select(
        Room.id,
        Room.name,
        Room.retention_recording_days,
        Room.retention_audio_days,
        Room.retention_transcript_days,
    )
    if ids is not None:
        query = query.where(Room.id.in_(list(ids)))
    rows = await conn.execute(query)
    return {row.id: RoomRetention(*row) for row in rows}


async def apply_retention(
    engine: AsyncEngine,
    recordings: Storage,
    derived: Storage,
    settings: Settings,
    now: datetime,
    dry_run: bool = False,
) -> Deletions:
    """Delete what the policy says is due at `now` (nothing with `dry_run`); returns the
    deletions made (or, with `dry_run`, those a real pass would make). Failed ones are
    logged, counted in `failed` and left out."""
    async with engine.connect() as conn:
        rooms = await load_rooms(conn)
    pass_ = _Pass(engine, recordings, derived, settings, now, dry_run, rooms)
    done = Deletions(
        [
            *await pass_.transcripts(),
            *await pass_.audio(),
            *await pass_.recordings(),
        ]
    )
    done.failed = pass_.failures
    if not dry_run and (done or done.failed):
        _log.info("retention pass done", deleted=len(done), failed=done.failed)
    return done


async def run_retention(
    engine: AsyncEngine,
    settings: Settings,
    *,
    recordings: Storage | None = None,
    derived: Storage | None = None,
    dry_run: bool = False,
) -> Deletions:
    """A pass at the real clock, on the storages the settings name unless given: what the
    server's loop and `reflector retention` run."""
    return await apply_retention(
        engine,
        recordings if recordings is not None else recording_storage(settings),
        derived if derived is not None else derived_storage(settings),
        settings,
        utcnow(),
        dry_run=dry_run,
    )


def summary(done: Deletions, *, dry_run: bool) -> str:
    """The closing line of `reflector retention`."""
    count = len(done)
    if dry_run:
        said = (
            f"dry run: {count} deletion(s) would be made; nothing was changed."
            if count
            else "dry run: nothing is due; nothing was changed."
        )
    else:
        said = f"{count} deletion(s) made." if count else "nothing is due."
    if done.failed:
        said += (
            f" {done.failed} could not be made (see the log above); they are tried again at "
            "the next pass."
        )
    return said


@dataclass
class _Pass:
    engine: AsyncEngine
    recording_storage: Storage
    derived: Storage
    settings: Settings
    now: datetime
    dry_run: bool
    rooms: dict[str, RoomRetention]
    failures: int = 0
    transcripts_going: set[str] = field(default_factory=set)

    def _rule(self, kind: Kind, room_id: str | None) -> Rule | None:
        room = self.rooms.get(room_id) if room_id is not None else None
        return rule_for(kind, self.settings, room)

    def _cutoff(self, kind: Kind) -> datetime | None:
        days = shortest_days(kind, self.settings, self.rooms)
        return None if days is None else self.now - timedelta(days=days)

    async def _candidates(self, query: Any) -> Sequence[Any]:
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).all()

    # --- transcripts --------------------------------------------------------------------

    async def transcripts(self) -> list[Deletion]:
        cutoff = self._cutoff(Kind.transcript)
        if cutoff is None:
            return []
        rows = await self._candidates(
            select(Transcript.id, Transcript.room_id, Transcript.ended_at)
            .where(
                Transcript.status == TranscriptStatus.ended.value,
                Transcript.ended_at <= cutoff,
            )
            .order_by(Transcript.ended_at)
        )
        done: list[Deletion] = []
        for row in rows:
            rule = self._rule(Kind.transcript, row.room_id)
            if rule is None or not rule.due(row.ended_at, self.now):
                continue
            deletion = await self._transcript(row.id, rule)
            if deletion is not None:
                self.transcripts_going.add(row.id)
                done.append(deletion)
        return done

    async def _transcript(self, transcript_id: str, rule: Rule) -> Deletion | None:
        async with create_session_factory(self.engine)() as session:
            transcript = await session.get(Transcript, transcript_id)
            # Gone, or processed again since it was listed: not due any more.
            if (
                transcript is None
                or transcript.status != TranscriptStatus.ended.value
                or transcript.ended_at is None
                or not rule.due(transcript.ended_at, self.now)
            ):
                return None
            deletion = Deletion(
                Kind.transcript.value,
                transcript.id,
                object_url(self.derived, transcript.storage_prefix.rstrip("/") + "/"),
                f"{rule.source}: ended {stamp(transcript.ended_at)}",
            )
            if self.dry_run:
                return deletion
            try:
                await remove_transcript(session, transcript, self.derived)
                await record(await session.connection(), deletion, self.now)
                await session.commit()
            except Exception as exc:
                await session.rollback()
                self.failures += 1
                _failed(deletion, exc)
                return None
            return logged(deletion)

    # --- derived audio ------------------------------------------------------------------

    async def audio(self) -> list[Deletion]:
        cutoff = self._cutoff(Kind.audio)
        if cutoff is None:
            return []
        rows = await self._candidates(
            select(
                Transcript.id,
                Transcript.room_id,
                Transcript.ended_at,
                Transcript.audio_key,
                Transcript.playback_key,
                Transcript.steps,
                Transcript.stored_bytes,
            )
            .where(
                Transcript.status == TranscriptStatus.ended.value,
                Transcript.audio_deleted_at.is_(None),
                or_(Transcript.audio_key.is_not(None), Transcript.playback_key.is_not(None)),
                Transcript.ended_at <= cutoff,
            )
            .order_by(Transcript.ended_at)
        )
        done: list[Deletion] = []
        for row in rows:
            if row.id in self.transcripts_going:
                continue
            rule = self._rule(Kind.audio, row.room_id)
            if rule is None or not rule.due(row.ended_at, self.now):
                continue
            deletion = await self._audio(row, rule)
            if deletion is not None:
                done.append(deletion)
        return done

    async def _audio(self, row: Any, rule: Rule) -> Deletion | None:
        steps: dict[str, Any] = dict(row.steps or {})
        # The audio step's output holds the peaks the waveform is drawn from and the keys of
        # the audio: it goes with the audio, so a later run makes the step again.
        keys = [key for key in (row.audio_key, row.playback_key, steps.pop("audio", None)) if key]
        deletion = Deletion(
            Kind.audio.value,
            row.id,
            " ".join(object_url(self.derived, str(key)) for key in keys),
            f"{rule.source}: ended {stamp(row.ended_at)}",
        )
        if self.dry_run:
            return deletion
        try:
            removed = 0
            for key in keys:
                if row.stored_bytes is not None:
                    removed += await self.derived.size(str(key)) or 0
                await self.derived.delete(str(key))
            async with self.engine.begin() as conn:
                values: dict[str, Any] = {
                    "audio_key": None,
                    "playback_key": None,
                    "steps": steps,
                    "audio_deleted_at": self.now,
                }
                if row.stored_bytes is not None:
                    values["stored_bytes"] = max(0, row.stored_bytes - removed)
                marked = await conn.execute(
                    update(Transcript)
                    .where(Transcript.id == row.id, Transcript.audio_deleted_at.is_(None))
                    .values(**values)
                    .returning(Transcript.id)
                )
                if marked.first() is None:
                    return None
                await record(conn, deletion, self.now)
        except Exception as exc:
            self.failures += 1
            _failed(deletion, exc)
            return None
        return logged(deletion)

    # --- raw recordings -----------------------------------------------------------------

    async def recordings(self) -> list[Deletion]:
        cutoff = self._cutoff(Kind.recording)
        if cutoff is None:
            return []
        rows = await self._candidates(
            select(
                Recording.id,
                Recording.bucket,
                Recording.key,
                Recording.room_id,
                Recording.processed_at,
            )
            .where(
                # Only what was processed successfully: a failed recording may be retried.
                Recording.status == RecordingStatus.completed.value,
                Recording.object_deleted_at.is_(None),
                Recording.processed_at <= cutoff,
            )
            .order_by(Recording.processed_at)
        )
        done: list[Deletion] = []
        for row in rows:
            rule = self._rule(Kind.recording, row.room_id)
            if rule is None or not rule.due(row.processed_at, self.now):
                continue
            deletion = Deletion(
                Kind.recording.value,
                row.id,
                raw_target(self.recording_storage, row.bucket, row.key),
                f"{rule.source}: processed {stamp(row.processed_at)}",
            )
            if not in_storage(self.recording_storage, row.bucket):
                self.failures += 1
                _log.warning(
                    "retention skipped a recording in another bucket",
                    subject_id=row.id,
                    target=deletion.target,
                    storage=self.recording_storage.label,
                    hint="it is kept; delete it by hand if it should go",
                )
                continue
            if self.dry_run:
                done.append(deletion)
                continue
            try:
                await self.recording_storage.delete(row.key)
                async with self.engine.begin() as conn:
                    if await mark_raw_deleted(conn, row.id, self.now):
                        await record(conn, deletion, self.now)
                    else:
                        continue
            except Exception as exc:
                self.failures += 1
                _failed(deletion, exc)
                continue
            done.append(logged(deletion))
        return done


def raw_target(storage: Storage, bucket: str, key: str) -> str:
    """Where a recording's raw file is: its own bucket on S3, the folder otherwise."""
    if storage.label.startswith("s3://"):
        return f"s3://{bucket}/{key}"
    return object_url(storage, key)


def in_storage(storage: Storage, bucket: str) -> bool:
    """Whether a recording stored in `bucket` is in `storage` (an S3 storage names its bucket;
    a local folder is taken to hold every recording, as the recording job takes it)."""
    own: str | None = getattr(storage, "bucket", None)
    return own is None or own == bucket


async def mark_raw_deleted(conn: AsyncConnection, recording_id: str, now: datetime) -> bool:
    """Note that the recording's raw file is gone; False when someone noted it already."""
    marked = await conn.execute(
        update(Recording)
        .where(Recording.id == recording_id, Recording.object_deleted_at.is_(None))
        .values(object_deleted_at=now)
        .returning(Recording.id)
    )
    return marked.first() is not None
