"""A `reflector serve` process on loopback for benchmarks, and a wrk runner."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

TOKEN = re.compile(r"rfl_[A-Za-z0-9_-]{20,}")


@dataclass(frozen=True)
class Server:
    base: str
    token: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(
    extra_env: dict[str, str] | None = None, *, workers: int = 1, args: tuple[str, ...] = ()
) -> Iterator[Server]:
    """A fresh server in an empty folder (SQLite unless DATABASE_URL is given)."""
    reflector = str(Path(sys.executable).parent / "reflector")
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        env = {**os.environ, "LOG_LEVEL": "WARNING", **(extra_env or {})}
        process = subprocess.Popen(
            [reflector, "serve", "--port", str(port), "--workers", str(workers), *args],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert process.stdout is not None
            token = ""
            while not token:
                line = process.stdout.readline()
                if not line:
                    raise RuntimeError("reflector serve exited before printing its admin token")
                match = TOKEN.search(line)
                token = match.group() if match else ""
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    httpx.get(f"{base}/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            yield Server(base, token)
        finally:
            process.terminate()
            process.wait(timeout=10)


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    value = float(re.sub(r"[a-z]+$", "", text))
    if text.endswith("us"):
        return value / 1000
    if text.endswith("ms"):
        return value
    return value * 1000


def wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    headers: dict[str, str],
    script: str | None = None,
) -> WrkResult:
    threads = os.environ.get("WRK_THREADS", "2")
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        command += ["-s", script]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    if os.environ.get("WRK_TIME"):
        command = ["/usr/bin/time", "-f", "wrk cpu: %U user %S sys %e wall", *command]
    done = subprocess.run([*command, url], capture_output=True, text=True, check=True)
    out = done.stdout
    if os.environ.get("WRK_TIME"):
        print(done.stderr.strip().splitlines()[-1])
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    distribution = out.split("Latency Distribution", 1)[-1]
    p50 = _ms(re.search(r"50%\s+(\S+)", distribution).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+(\S+)", distribution).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(group) for group in socket_errors.groups())
    return WrkResult(rps, p50, p99, errors)
