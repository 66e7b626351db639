"""Cost of token authentication and a rooms query, against the bare health check.

Baseline: GET /health (one `SELECT 1`, no auth) on the same server in the same run. Measured:
GET /v1/rooms with a bearer token (token lookup + an owner-scoped page of 50 rooms). The ratio
says what auth and the ORM add on top of a request that already touches the database.
"""

from __future__ import annotations

import httpx

from server import serve, wrk

SECONDS = 8
CONNECTIONS = 16


def main() -> None:
    with serve() as server:
        auth = {"Authorization": f"Bearer {server.token}"}
        for index in range(50):
            httpx.post(
                f"{server.base}/v1/rooms", json={"name": f"bench-{index}"}, headers=auth
            ).raise_for_status()
        wrk(f"{server.base}/health", seconds=2, connections=CONNECTIONS, headers={})
        baseline = wrk(
            f"{server.base}/health", seconds=SECONDS, connections=CONNECTIONS, headers={}
        )
        rooms = wrk(
            f"{server.base}/v1/rooms", seconds=SECONDS, connections=CONNECTIONS, headers=auth
        )
    for label, result in [("GET /health (baseline)", baseline), ("GET /v1/rooms (auth)", rooms)]:
        print(
            f"{label:26} {result.requests_per_second:8.0f} req/s  "
            f"p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms  errors {result.errors}"
        )
    ratio = rooms.requests_per_second / baseline.requests_per_second
    print(f"ratio rooms/health throughput: {ratio:.2f}")


if __name__ == "__main__":
    main()
