"""A local Whereby: the REST API, signed webhooks and cloud recordings, acted out in memory.

For development, demos and tests. `create_sandbox_app(config)` builds the app;
`serve_sandbox(config, host, port)` runs it. The control API (`/_sandbox/...`, documented in
`reflector.sandbox.control`) joins people, starts recordings and shows what was sent and
received; each room URL serves a small page to do the same by hand.
"""

from reflector.sandbox.app import create_sandbox_app
from reflector.sandbox.config import DEFAULT_AUDIO_FILE, SandboxConfig
from reflector.sandbox.engine import Sandbox
from reflector.sandbox.server import serve_sandbox
from reflector.sandbox.state import SandboxState

__all__ = [
    "DEFAULT_AUDIO_FILE",
    "Sandbox",
    "SandboxConfig",
    "SandboxState",
    "create_sandbox_app",
    "serve_sandbox",
]
