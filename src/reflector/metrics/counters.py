"""Counters and histograms kept in the database (table metric_counters).

What happens in whichever process, on whichever host (an SQS message received by the server
holding the consumer's lease, a pipeline step run by a Celery worker), is added to one row per
series here, so every server process scrapes the same totals. A histogram is stored the way
Prometheus exposes it: one cumulative `<name>_bucket` row per upper bound `le` (`+Inf`
included), `<name>_sum` and `<name>_count`.

Every write is one atomic upsert (`value = value + delta`), so concurrent writers never lose an
increment. A failed write is logged and dropped: a metric must never break the work it
measures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reflector.db.upsert import insert_for
from reflector.logs import get_logger
from reflector.metrics.models import MetricCounter

_log = get_logger("reflector.metrics")

# The labels column's width (models.MetricCounter).
MAX_LABELS_LENGTH = 500

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Family:
    """A metric family stored in metric_counters: what writers add to and /metrics reads."""

    name: str  # as exposed: a counter's ends in _total
    kind: Literal["counter", "histogram"]
    documentation: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # histograms: the finite upper bounds, ascending


SQS_MESSAGES = Family(
    "reflector_sqs_messages_total",
    "counter",
    "SQS messages of the recording queue: received, deleted once handled, and failed "
    "(malformed, or their intake raised; left for redelivery or the dead-letter queue).",
    ("outcome",),
)
SQS_MESSAGE_AGE = Family(
    "reflector_sqs_message_age_seconds",
    "histogram",
    "Age of SQS messages when received (now minus their SentTimestamp): how far behind the "
    "consumer is.",
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 4 * 24 * 3600),
)
PIPELINE_STEP_DURATION = Family(
    "reflector_pipeline_step_duration_seconds",
    "histogram",
    "Seconds each pipeline step took when it ran (steps reused from a checkpoint are not counted).",
    ("step",),
    buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
FAMILIES: tuple[Family, ...] = (SQS_MESSAGES, SQS_MESSAGE_AGE, PIPELINE_STEP_DURATION)


def labels_key(labels: Labels | None) -> str:
    """The labels column's value: canonical JSON (sorted keys, no spaces), "{}" for none."""
    key = json.dumps(dict(labels or {}), sort_keys=True, separators=(",", ":"))
    if len(key) > MAX_LABELS_LENGTH:
        raise ValueError(f"labels longer than {MAX_LABELS_LENGTH} characters: {key[:80]}...")
    return key


def bound_label(bound: float) -> str:
    """A bucket's `le` label: "0.5", "60.0", "+Inf". Stored in rows, so it must not change."""
    return "+Inf" if bound == math.inf else repr(float(bound))


@dataclass
class Batch:
    """Increments gathered in memory, then written together in one transaction."""

    deltas: dict[tuple[str, str], float] = field(default_factory=dict)

    def increment(self, name: str, labels: Labels | None = None, by: float = 1.0) -> None:
        if by == 0:
            return
        key = (name, labels_key(labels))
        self.deltas[key] = self.deltas.get(key, 0.0) + by

    def observe(
        self, name: str, labels: Labels | None, value: float, buckets: Sequence[float]
    ) -> None:
        """One observation of a histogram: every bucket whose bound it does not exceed (and
        +Inf), the sum, and the count."""
        if math.isnan(value):
            return
        for bound in (*sorted(buckets), math.inf):
            if value <= bound:
                self.increment(f"{name}_bucket", {**(labels or {}), "le": bound_label(bound)})
        self.increment(f"{name}_sum", labels, value)
        self.increment(f"{name}_count", labels)

    def __bool__(self) -> bool:
        return bool(self.deltas)


async def write(engine: AsyncEngine, batch: Batch) -> bool:
    """Add the batch to metric_counters; False (and a warning in the log) when that failed."""
    if not batch:
        return True
    # One order for every writer: concurrent upserts then lock rows in the same order and
    # cannot deadlock each other on PostgreSQL.
    rows = [
        {"name": name, "labels": labels, "value": value}
        for (name, labels), value in sorted(batch.deltas.items())
    ]
    try:
        async with engine.begin() as conn:
            await conn.execute(_upsert(conn.dialect.name), rows)
    except Exception as exc:
        _log.warning(
            "writing metrics failed; the work they measure went on, their counts miss it",
            metrics=sorted({name for name, _labels in batch.deltas}),
            error=f"{exc.__class__.__name__}: {exc}",
        )
        return False
    return True


async def increment(
    engine: AsyncEngine, name: str, labels: Labels | None = None, by: float = 1.0
) -> bool:
    """Add `by` to a counter (one series of it: `labels`). Never raises: False on failure."""
    batch = Batch()
    try:
        batch.increment(name, labels, by)
    except ValueError as exc:
        _log.warning("metric not counted", metric=name, error=str(exc))
        return False
    return await write(engine, batch)


async def observe(
    engine: AsyncEngine,
    name: str,
    labels: Labels | None,
    value: float,
    buckets: Sequence[float],
) -> bool:
    """Record one observation of a histogram. Never raises: False on failure."""
    batch = Batch()
    try:
        batch.observe(name, labels, value, buckets)
    except ValueError as exc:
        _log.warning("metric not observed", metric=name, error=str(exc))
        return False
    return await write(engine, batch)


@dataclass(frozen=True)
class StoredSeries:
    name: str
    labels: dict[str, str]
    value: float


async def read_all(conn: AsyncConnection) -> list[StoredSeries]:
    """Every stored series. Rows whose labels are not a JSON object of strings are skipped
    (with a warning): one bad row must not break a scrape."""
    result = await conn.execute(
        select(MetricCounter.name, MetricCounter.labels, MetricCounter.value).order_by(
            MetricCounter.name, MetricCounter.labels
        )
    )
    series: list[StoredSeries] = []
    for name, raw, value in result:
        labels = _parse_labels(raw)
        if labels is None:
            _log.warning("metric_counters row with unreadable labels skipped", metric=name)
            continue
        series.append(StoredSeries(name, labels, float(value)))
    return series


def _parse_labels(raw: str) -> dict[str, str] | None:
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        return None
    return {str(k): v for k, v in parsed.items()}


def _upsert(dialect: str) -> Any:
    table = MetricCounter.__table__
    statement = insert_for(dialect, table)
    return statement.on_conflict_do_update(
        index_elements=["name", "labels"],
        set_={"value": table.c.value + statement.excluded.value},
    )


def histogram_rows(
    family: Family, series: Iterable[StoredSeries]
) -> dict[tuple[str, ...], tuple[list[tuple[str, float]], float]]:
    """A stored histogram's series grouped by label values (in `family.labels` order): its
    cumulative buckets, every bound of `family.buckets` then +Inf (a bound without a row has
    had no observation at or under it: 0), and its sum. +Inf falls back on the `_count` row.
    Bounds no longer in `family.buckets` (an older version's) are left out."""
    bucket_name, sum_name, count_name = (f"{family.name}_{s}" for s in ("bucket", "sum", "count"))
    bounds = [bound_label(b) for b in (*sorted(family.buckets), math.inf)]
    buckets: dict[tuple[str, ...], dict[str, float]] = {}
    sums: dict[tuple[str, ...], float] = {}
    counts: dict[tuple[str, ...], float] = {}
    for item in series:
        values = tuple(item.labels.get(name, "") for name in family.labels)
        if item.name == bucket_name and "le" in item.labels:
            buckets.setdefault(values, {})[item.labels["le"]] = item.value
        elif item.name == sum_name:
            sums[values] = item.value
        elif item.name == count_name:
            counts[values] = item.value
    grouped: dict[tuple[str, ...], tuple[list[tuple[str, float]], float]] = {}
    for values in sorted(set(buckets) | set(counts)):
        stored = buckets.get(values, {})
        cumulative = [(le, stored.get(le, 0.0)) for le in bounds]
        if bounds[-1] not in stored:
            cumulative[-1] = (bounds[-1], counts.get(values, 0.0))
        grouped[values] = (cumulative, sums.get(values, 0.0))
    return grouped
