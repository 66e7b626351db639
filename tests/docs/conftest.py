"""The docs' tests cause real faults: they need the sandbox, the scripted HTTP server, moto and
a webhook receiver on loopback."""

from tests.fakes.scripted_http import scripted_http, scripted_http_server
from tests.recordings.conftest import aws_env, moto_server
from tests.room_webhooks.conftest import receiver
from tests.sandbox.conftest import start_sandbox

__all__ = [
    "aws_env",
    "moto_server",
    "receiver",
    "scripted_http",
    "scripted_http_server",
    "start_sandbox",
]
