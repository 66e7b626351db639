"""Running `reflector` commands as a user would, in subprocesses, and waiting on them."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

T = TypeVar("T")
# The admin token `reflector serve` prints on its first start.
TOKEN = re.compile(r"rfl_[A-Za-z0-9_-]{20,}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def reflector_bin() -> str:
    return str(Path(sys.executable).parent / "reflector")


def wait_for(check: Callable[[], T], within: float, every: float = 0.02) -> T:
    """Call `check` until it returns something truthy or `within` seconds pass; its last
    value either way, for the caller to assert on."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def answer(url: str, headers: Mapping[str, str] | None = None) -> httpx.Response | None:
    """The response, or None while nothing listens yet."""
    try:
        return httpx.get(url, headers=headers, timeout=1)
    except httpx.TransportError:
        return None


def wait_answer(
    url: str, within: float = 30, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    response = wait_for(lambda: answer(url, headers), within, every=0.05)
    assert response is not None, f"{url} did not answer within {within} s"
    return response


@dataclass
class Served:
    process: subprocess.Popen[str]
    base: str
    token: str | None

    def stop(self) -> str:
        """Stop the server; what it printed on stdout after the token."""
        self.process.terminate()
        out, _ = self.process.communicate(timeout=15)
        return out or ""


def start_serve(
    cwd: Path,
    env: Mapping[str, str],
    *args: str,
    stderr: IO[Any] | int = subprocess.DEVNULL,
    expect_token: bool = True,
) -> Served:
    """`reflector serve` on a free port, answering /health; with its first admin token when
    `expect_token` (the database was empty)."""
    port = free_port()
    process = subprocess.Popen(
        [reflector_bin(), "serve", "--port", str(port), *args],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    token = None
    if expect_token:
        assert process.stdout is not None
        while token is None:
            line = process.stdout.readline()
            assert line, "reflector serve exited before printing the first admin token"
            match = TOKEN.search(line)
            token = match.group() if match else None
    base = f"http://127.0.0.1:{port}"
    wait_answer(f"{base}/health", within=60)
    return Served(process, base, token)


@contextlib.contextmanager
def serve_with_sandbox(folder: Path) -> Iterator[tuple[Served, str, Path]]:
    """`reflector serve` from an empty DATA_DIR in `folder`, with no Whereby key or AWS set, so
    it starts its sandbox (on a free port) and its embedded worker; yields the server, the
    sandbox's URL and the server's log, and checks the log holds no traceback at the end."""
    sandbox_port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WHEREBY_", "AWS_", "DATABASE_URL", "REFLECTOR_ENV_FILE"))
    }
    env |= {
        "DATA_DIR": str(folder / "data"),
        "WHEREBY_SANDBOX_PORT": str(sandbox_port),
        "LOG_LEVEL": "WARNING",
    }
    log = folder / "serve.log"
    with log.open("w") as err:
        server = start_serve(folder, env, stderr=err)
    try:
        yield server, f"http://127.0.0.1:{sandbox_port}", log
    finally:
        server.stop()
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]
