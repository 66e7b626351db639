"""The numbers /metrics exposes, read from the database at scrape time.

Every server process (uvicorn workers, replicas) answers with the same totals, because they
come from rows that all processes and Celery workers write: the webhook inbox, meetings,
recordings, transcripts, outgoing webhook attempts, and metric_counters for what leaves no row
of its own. Labels carry only bounded, non-personal values (platforms, event types, outcomes,
statuses, steps, bucket names), never ids, names or URLs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reflector.meetings.models import Meeting
from reflector.metrics.counters import FAMILIES, Family, StoredSeries, histogram_rows, read_all
from reflector.platforms.base import (
    BadSignature,
    MalformedSignature,
    MissingSignature,
    StaleSignature,
)
from reflector.recordings.models import Recording, RecordingStatus
from reflector.room_webhooks.models import WebhookAttempt, WebhookDelivery
from reflector.transcripts.models import Transcript
from reflector.webhooks.inbox import DUPLICATE
from reflector.webhooks.models import WebhookEvent, WebhookRejection

# Rejections that mean the signature itself was wrong (not a rate limit or a missing secret).
SIGNATURE_REASONS = frozenset(
    cls.reason for cls in (MissingSignature, MalformedSignature, BadSignature, StaleSignature)
)


@dataclass
class Snapshot:
    """What one scrape read; each list holds (label values..., value) rows."""

    webhook_events: list[tuple[str, str, str, float]] = field(default_factory=list)
    webhook_rejections: list[tuple[str, str, float]] = field(default_factory=list)
    meetings: list[tuple[str, float, float]] = field(default_factory=list)
    recordings: list[tuple[str, float]] = field(default_factory=list)
    recording_bytes: list[tuple[str, float]] = field(default_factory=list)
    derived_bytes: float = 0.0
    outgoing_attempts: list[tuple[str, str, float]] = field(default_factory=list)
    stored: list[StoredSeries] = field(default_factory=list)


async def read_snapshot(engine: AsyncEngine) -> Snapshot:
    """Everything /metrics shows, in one read-only connection."""
    async with engine.connect() as conn:
        return Snapshot(
            webhook_events=await _webhook_events(conn),
            webhook_rejections=[
                (platform, reason, float(n))
                for platform, reason, n in await conn.execute(
                    select(WebhookRejection.platform, WebhookRejection.reason, func.count())
                    .group_by(WebhookRejection.platform, WebhookRejection.reason)
                    .order_by(WebhookRejection.platform, WebhookRejection.reason)
                )
            ],
            meetings=[
                (platform, float(n), float(people or 0))
                for platform, n, people in await conn.execute(
                    select(Meeting.platform, func.count(), func.sum(Meeting.num_clients))
                    .where(Meeting.is_active)
                    .group_by(Meeting.platform)
                )
            ],
            recordings=[
                (status, float(n))
                for status, n in await conn.execute(
                    select(Recording.status, func.count()).group_by(Recording.status)
                )
            ],
            recording_bytes=[
                (bucket, float(size or 0))
                for bucket, size in await conn.execute(
                    select(Recording.bucket, func.sum(Recording.size))
                    .where(Recording.object_deleted_at.is_(None))
                    .group_by(Recording.bucket)
                    .order_by(Recording.bucket)
                )
            ],
            derived_bytes=float(await conn.scalar(select(func.sum(Transcript.stored_bytes))) or 0),
            outgoing_attempts=[
                (event, outcome, float(n))
                for event, outcome, n in await conn.execute(
                    select(WebhookDelivery.event, WebhookAttempt.outcome, func.count())
                    .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
                    .group_by(WebhookDelivery.event, WebhookAttempt.outcome)
                    .order_by(WebhookDelivery.event, WebhookAttempt.outcome)
                )
            ],
            stored=await read_all(conn),
        )


async def _webhook_events(conn: AsyncConnection) -> list[tuple[str, str, str, float]]:
    """One row per stored event by its outcome, and the redeliveries as "duplicate"."""
    rows: list[tuple[str, str, str, float]] = []
    duplicates: dict[tuple[str, str], float] = {}
    result = await conn.execute(
        select(
            WebhookEvent.platform,
            WebhookEvent.type,
            WebhookEvent.outcome,
            func.count(),
            func.sum(WebhookEvent.deliveries - 1),
        )
        .group_by(WebhookEvent.platform, WebhookEvent.type, WebhookEvent.outcome)
        .order_by(WebhookEvent.platform, WebhookEvent.type, WebhookEvent.outcome)
    )
    for platform, kind, outcome, n, again in result:
        rows.append((platform, kind, outcome, float(n)))
        if again:
            duplicates[(platform, kind)] = duplicates.get((platform, kind), 0.0) + float(again)
    rows.extend((platform, kind, DUPLICATE, n) for (platform, kind), n in duplicates.items())
    return rows


class DatabaseCollector:
    """A prometheus_client collector over the latest `Snapshot`.

    prometheus_client collects synchronously, the database is read asynchronously: the
    route awaits `refresh()`, then encodes the registry with no await in between, so a
    scrape always shows the snapshot it read itself.
    """

    def __init__(self, *, version: str, platforms: Sequence[str], derived_label: str) -> None:
        self.version = version
        self.platforms = tuple(platforms)
        self.derived_label = derived_label
        self.snapshot = Snapshot()

    async def refresh(self, engine: AsyncEngine) -> None:
        self.snapshot = await read_snapshot(engine)

    def describe(self) -> Iterable[Metric]:
        # Names for the registry's clash check, without reading the database.
        return []

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        build = GaugeMetricFamily(
            "reflector_build_info",
            "The running Reflector's version (always 1).",
            labels=["version"],
        )
        build.add_metric([self.version], 1)
        yield build

        events = CounterMetricFamily(
            "reflector_webhook_events_total",
            'Verified platform webhook events by what was done with them; "duplicate" counts '
            "redeliveries of an event already stored.",
            labels=["platform", "type", "outcome"],
        )
        for platform, kind, outcome, n in snap.webhook_events:
            events.add_metric([platform, kind, outcome], n)
        yield events

        rejections = CounterMetricFamily(
            "reflector_webhook_rejections_total",
            "Platform webhook requests refused before storage, by reason.",
            labels=["platform", "reason"],
        )
        signatures = CounterMetricFamily(
            "reflector_webhook_signature_failures_total",
            "Platform webhook requests whose signature was missing, malformed, wrong or "
            "outside the time window: a wrong webhook secret or a clock off.",
            labels=["platform"],
        )
        failures: dict[str, float] = {}
        for platform, reason, n in snap.webhook_rejections:
            rejections.add_metric([platform, reason], n)
            if reason in SIGNATURE_REASONS:
                failures[platform] = failures.get(platform, 0.0) + n
        for platform, n in sorted(failures.items()):
            signatures.add_metric([platform], n)
        yield rejections
        yield signatures

        active = GaugeMetricFamily(
            "reflector_active_meetings", "Meetings active now.", labels=["platform"]
        )
        people = GaugeMetricFamily(
            "reflector_meeting_participants",
            "People in active meetings now (the platform's num_clients).",
            labels=["platform"],
        )
        by_platform = dict.fromkeys(self.platforms, (0.0, 0.0))
        by_platform.update({p: (n, clients) for p, n, clients in snap.meetings})
        for platform, (n, clients) in sorted(by_platform.items()):
            active.add_metric([platform], n)
            people.add_metric([platform], clients)
        yield active
        yield people

        recordings = GaugeMetricFamily(
            "reflector_recordings", "Recordings by status.", labels=["status"]
        )
        by_status = {status.value: 0.0 for status in RecordingStatus}
        by_status.update(dict(snap.recordings))
        for status, n in sorted(by_status.items()):
            recordings.add_metric([status], n)
        yield recordings

        stored = GaugeMetricFamily(
            "reflector_stored_bytes",
            "Bytes in storage: raw recordings per bucket (those retention has not removed), "
            "and transcripts' derived files (as of each transcript's end).",
            labels=["bucket", "kind"],
        )
        for bucket, size in snap.recording_bytes:
            stored.add_metric([bucket, "recordings"], size)
        stored.add_metric([self.derived_label, "derived"], snap.derived_bytes)
        yield stored

        outgoing = CounterMetricFamily(
            "reflector_outgoing_webhook_deliveries_total",
            "Attempts to deliver rooms' outgoing webhooks, by event and outcome (succeeded, "
            "retrying, failed).",
            labels=["event", "outcome"],
        )
        for event, outcome, n in snap.outgoing_attempts:
            outgoing.add_metric([event, outcome], n)
        yield outgoing

        for family in FAMILIES:
            yield _stored_family(family, snap.stored)


def _stored_family(family: Family, series: list[StoredSeries]) -> Metric:
    if family.kind == "histogram":
        histogram = HistogramMetricFamily(
            family.name, family.documentation, labels=list(family.labels)
        )
        for values, (buckets, total) in histogram_rows(family, series).items():
            histogram.add_metric(list(values), buckets, total)
        return histogram
    counter = CounterMetricFamily(family.name, family.documentation, labels=list(family.labels))
    for item in series:
        if item.name == family.name:
            counter.add_metric([item.labels.get(name, "") for name in family.labels], item.value)
    return counter
