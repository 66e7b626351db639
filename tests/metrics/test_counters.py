"""metric_counters: atomic increments and histograms on SQLite and PostgreSQL; a failed write
is logged, never raised."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from reflector.db.engine import create_engine
from reflector.metrics import counters
from reflector.metrics.counters import Family, StoredSeries
from reflector.metrics.models import MetricCounter

HISTOGRAM = Family("test_seconds", "histogram", "A test histogram.", ("step",), (1, 10))


async def stored(engine: AsyncEngine) -> dict[tuple[str, str], float]:
    async with engine.connect() as conn:
        series = await counters.read_all(conn)
    return {(s.name, counters.labels_key(s.labels)): s.value for s in series}


async def test_increments_add_up_and_label_order_does_not_matter(engine: AsyncEngine) -> None:
    assert await counters.increment(engine, "test_total", {"a": "1", "b": "2"})
    assert await counters.increment(engine, "test_total", {"b": "2", "a": "1"}, by=2.5)
    assert await counters.increment(engine, "test_total")
    assert await stored(engine) == {
        ("test_total", '{"a":"1","b":"2"}'): 3.5,
        ("test_total", "{}"): 1.0,
    }


async def test_concurrent_increments_are_not_lost(engine: AsyncEngine) -> None:
    results = await asyncio.gather(
        *(counters.increment(engine, "test_total", {"outcome": "x"}) for _ in range(20))
    )
    assert all(results)
    assert await stored(engine) == {("test_total", '{"outcome":"x"}'): 20.0}


async def test_observations_fill_cumulative_buckets_sum_and_count(engine: AsyncEngine) -> None:
    for value in (0.5, 3.0, 30.0):
        assert await counters.observe(
            engine, HISTOGRAM.name, {"step": "audio"}, value, HISTOGRAM.buckets
        )
    assert await stored(engine) == {
        ("test_seconds_bucket", '{"le":"1.0","step":"audio"}'): 1.0,
        ("test_seconds_bucket", '{"le":"10.0","step":"audio"}'): 2.0,
        ("test_seconds_bucket", '{"le":"+Inf","step":"audio"}'): 3.0,
        ("test_seconds_sum", '{"step":"audio"}'): 33.5,
        ("test_seconds_count", '{"step":"audio"}'): 3.0,
    }
    async with engine.connect() as conn:
        series = await counters.read_all(conn)
    assert counters.histogram_rows(HISTOGRAM, series) == {
        ("audio",): ([("1.0", 1.0), ("10.0", 2.0), ("+Inf", 3.0)], 33.5)
    }


def test_histogram_rows_fill_missing_bounds_and_drop_foreign_ones() -> None:
    series = [
        StoredSeries("test_seconds_bucket", {"step": "a", "le": "10.0"}, 2.0),
        StoredSeries("test_seconds_bucket", {"step": "a", "le": "5.0"}, 1.0),  # old bounds
        StoredSeries("test_seconds_sum", {"step": "a"}, 12.0),
        StoredSeries("test_seconds_count", {"step": "a"}, 3.0),
        StoredSeries("other_total", {}, 7.0),
    ]
    assert counters.histogram_rows(HISTOGRAM, series) == {
        ("a",): ([("1.0", 0.0), ("10.0", 2.0), ("+Inf", 3.0)], 12.0)
    }


async def test_a_batch_is_written_in_one_go(engine: AsyncEngine) -> None:
    batch = counters.Batch()
    batch.increment("test_total", {"outcome": "received"}, 3)
    batch.increment("test_total", {"outcome": "failed"}, 0)  # nothing to write
    batch.observe(HISTOGRAM.name, {"step": "x"}, 20.0, HISTOGRAM.buckets)
    assert await counters.write(engine, batch)
    assert await stored(engine) == {
        ("test_total", '{"outcome":"received"}'): 3.0,
        ("test_seconds_bucket", '{"le":"+Inf","step":"x"}'): 1.0,
        ("test_seconds_sum", '{"step":"x"}'): 20.0,
        ("test_seconds_count", '{"step":"x"}'): 1.0,
    }
    assert await counters.write(engine, counters.Batch())


async def test_a_failed_write_is_logged_not_raised(tmp_path: Path) -> None:
    # A database without the table: every write fails there.
    broken = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}")
    try:
        with capture_logs() as logs:
            assert not await counters.increment(broken, "test_total", {"outcome": "x"})
            assert not await counters.observe(broken, "test_seconds", None, 1.0, (1,))
    finally:
        await broken.dispose()
    failures = [e for e in logs if e["event"].startswith("writing metrics failed")]
    assert len(failures) == 2
    assert failures[0]["log_level"] == "warning"
    assert failures[0]["metrics"] == ["test_total"]
    assert "metric_counters" in failures[0]["error"]


async def test_labels_too_long_are_refused_with_a_warning(engine: AsyncEngine) -> None:
    with capture_logs() as logs:
        assert not await counters.increment(engine, "test_total", {"x": "y" * 600})
    assert [e["event"] for e in logs] == ["metric not counted"]
    assert await stored(engine) == {}


async def test_rows_with_unreadable_labels_are_skipped(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(MetricCounter),
            [
                {"name": "test_total", "labels": "not json", "value": 1.0},
                {"name": "test_total", "labels": '{"a":1}', "value": 1.0},
                {"name": "test_total", "labels": '{"a":"1"}', "value": 2.0},
            ],
        )
    with capture_logs() as logs:
        assert await stored(engine) == {("test_total", '{"a":"1"}'): 2.0}
    assert len(logs) == 2
