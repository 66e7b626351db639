"""Signed Whereby webhooks into POST /v1/whereby on PostgreSQL, loaded by wrk.

wrk signs every request itself (HMAC-SHA256 in LuaJIT, lua/sha256.lua): 32 connections, 20 s
after a 5 s warm-up, joined/left events for one meeting with ever newer createdAt values and
new ids in each run (no redeliveries).
Baseline, same server and run: GET /health (one `SELECT 1`). Afterwards the meeting's stored
count must equal the numClients of the newest event stored.

Target on 2 cores: >= 1,100 events/s with p99 <= 50 ms and a right final count.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from reflector.db import models as _all_models  # noqa: F401 (registers every table)
from reflector.db.base import utcnow
from reflector.db.engine import create_engine, create_session_factory
from reflector.meetings.models import Meeting
from reflector.rooms.models import RecordingTrigger, RecordingType, Room, RoomMode
from reflector.webhooks.models import WebhookEvent
from server import serve, wrk

ADMIN_URL = os.environ.get(
    "REFLECTOR_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
DATABASE = "reflector_bench"
SECRET = "bench-webhook-secret"
MEETING_ID = "87673375"
ROOM_NAME = "/bench-0b1fbe30-2346-4681-85a5-f309f11e509f"
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
CONNECTIONS = 32
SECONDS = 20
# createdAt advances 8 ms per request of each wrk thread: an hour is far beyond a warm-up.
WARM_UP_SPAN_MS = 3_600_000


def bench_url() -> str:
    return make_url(ADMIN_URL).set(database=DATABASE).render_as_string(hide_password=False)


async def recreate_database() -> None:
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        await conn.execute(text(f"CREATE DATABASE {DATABASE}"))
    await engine.dispose()


async def add_meeting() -> None:
    engine = create_engine(bench_url())
    async with create_session_factory(engine)() as session:
        owner = await session.scalar(text("SELECT id FROM users LIMIT 1"))
        room = Room(
            name="bench",
            owner_id=owner,
            platform="whereby",
            recording_type=RecordingType.cloud,
            recording_trigger=RecordingTrigger.automatic_2nd_participant,
            is_locked=False,
            room_mode=RoomMode.normal,
        )
        session.add(room)
        await session.flush()
        session.add(
            Meeting(
                room_id=room.id,
                platform="whereby",
                platform_meeting_id=MEETING_ID,
                platform_room_name=ROOM_NAME,
                room_url="https://bench.whereby.com" + ROOM_NAME,
                host_room_url=None,
                start_date=utcnow(),
                end_date=utcnow(),
                room_settings={},
                num_clients=0,
                num_clients_by_role={},
                is_active=True,
            )
        )
        await session.commit()
    await engine.dispose()


async def final_check() -> tuple[int, int, int, int]:
    """(stored count, newest event's numClients, events stored, redeliveries)."""
    engine = create_engine(bench_url())
    async with create_session_factory(engine)() as session:
        meeting = await session.scalar(select(Meeting))
        newest = await session.scalar(
            select(WebhookEvent).order_by(WebhookEvent.created_at.desc()).limit(1)
        )
        stored, redelivered = (
            await session.execute(
                text("SELECT count(*), coalesce(sum(deliveries - 1), 0) FROM webhook_events")
            )
        ).one()
    await engine.dispose()
    if meeting is None or newest is None:
        raise RuntimeError("the benchmark stored no meeting or no event")
    numbers = json.loads(newest.payload)["data"]["numClients"]
    return meeting.num_clients, numbers, int(stored), int(redelivered)


def set_run(run: int, base_ms: int) -> None:
    """Event ids and createdAt values for the next wrk run (see lua/webhook_events.lua)."""
    os.environ.update({"RUN": str(run), "BASE_EPOCH_MS": str(base_ms)})


def main() -> None:
    asyncio.run(recreate_database())
    env = {
        "DATABASE_URL": bench_url(),
        "WHEREBY_WEBHOOK_SECRET": SECRET,
        "WEBHOOK_REQUESTS_PER_MINUTE": "100000000",
    }
    lua = Path(__file__).parent / "lua"
    # Only the receiver under test: no sandbox beside it, and jobs (none here) on Redis rather
    # than an embedded worker polling its queue.
    env["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/11"
    with serve(env, workers=WORKERS, args=("--no-sandbox",)) as server:
        asyncio.run(add_meeting())
        os.environ.update(
            {
                "LUA_DIR": str(lua),
                "WEBHOOK_SECRET": SECRET,
                "MEETING_ID": MEETING_ID,
                "ROOM_NAME": ROOM_NAME,
            }
        )
        script = str(lua / "webhook_events.lua")
        wrk(f"{server.base}/health", seconds=3, connections=CONNECTIONS, headers={})
        baseline = wrk(f"{server.base}/health", seconds=10, connections=CONNECTIONS, headers={})
        base_ms = int(time.time() * 1000)
        set_run(1, base_ms)
        wrk(
            f"{server.base}/v1/whereby",
            seconds=5,
            connections=CONNECTIONS,
            headers={},
            script=script,
        )
        # New event ids, all newer than the warm-up's: redeliveries would take another path.
        set_run(2, base_ms + WARM_UP_SPAN_MS)
        result = wrk(
            f"{server.base}/v1/whereby",
            seconds=SECONDS,
            connections=CONNECTIONS,
            headers={},
            script=script,
        )
    stored, newest, events, redelivered = asyncio.run(final_check())
    print(f"server: {WORKERS} worker process(es), PostgreSQL; wrk: {CONNECTIONS} connections")
    for label, r in [("GET /health (baseline)", baseline), ("POST /v1/whereby", result)]:
        print(
            f"{label:24} {r.requests_per_second:8.0f} req/s  p50 {r.p50_ms:6.1f} ms  "
            f"p99 {r.p99_ms:6.1f} ms  errors {r.errors}"
        )
    ratio = result.requests_per_second / baseline.requests_per_second
    print(f"ratio webhook/health throughput: {ratio:.2f}")
    verdict = "right" if stored == newest else "WRONG"
    print(
        f"final count: stored {stored}, newest event says {newest} -> {verdict} "
        f"({events} events, {redelivered} redelivered)"
    )
    target = result.requests_per_second >= 1100 and result.p99_ms <= 50 and stored == newest
    print(f"target (>= 1100 events/s, p99 <= 50 ms, right count): {'met' if target else 'NOT met'}")


if __name__ == "__main__":
    main()
