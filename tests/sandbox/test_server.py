"""serve_sandbox(): serves until its task is cancelled, then shuts down cleanly."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from reflector.sandbox import SandboxConfig, serve_sandbox
from tests.sandbox.conftest import API_KEY, WAIT_SECONDS


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_serve_sandbox_runs_until_cancelled(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = SandboxConfig(api_key=API_KEY, public_url=url, recordings_dir=tmp_path)
    task = asyncio.create_task(serve_sandbox(config, "127.0.0.1", port))
    async with httpx.AsyncClient(base_url=url, trust_env=False) as http:
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                assert not task.done(), task
                try:
                    response = await http.get(
                        "/v1/meetings", headers={"Authorization": f"Bearer {API_KEY}"}
                    )
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.02)
        assert response.status_code == 200

        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(httpx.ConnectError):
            await http.get("/")


def test_config_rejects_nonsense(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="api_key"):
        SandboxConfig(api_key="", public_url="http://127.0.0.1:1", recordings_dir=tmp_path)
    with pytest.raises(ValueError, match="public_url"):
        SandboxConfig(api_key="k", public_url="127.0.0.1:1", recordings_dir=tmp_path)
