"""Run the sandbox as an HTTP server (used by `reflector sandbox` and `reflector serve`)."""

from __future__ import annotations

import asyncio

import uvicorn

from reflector.sandbox.app import create_sandbox_app
from reflector.sandbox.config import SandboxConfig


async def serve_sandbox(config: SandboxConfig, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM, or until the calling task is cancelled; either way the
    server shuts down cleanly (connections closed, background work stopped)."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_sandbox_app(config),
            host=host,
            port=port,
            lifespan="on",
            # Logging is the caller's: keep uvicorn from installing its own configuration.
            log_config=None,
            access_log=False,
        )
    )
    serving = asyncio.ensure_future(server.serve())
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        # Run alongside other services, the sandbox is stopped by cancelling its task: turn
        # that into uvicorn's own graceful exit instead of abandoning the listening socket.
        server.should_exit = True
        await serving
        raise
