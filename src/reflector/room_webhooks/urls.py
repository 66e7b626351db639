"""Which URLs a room may send its webhooks to."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, StrictStr

from reflector.errors import InvalidInput
from reflector.settings import Environment, Settings

MAX_URL_LENGTH = 2048
_EXAMPLE = "https://example.com/hooks/reflector"


def check_url(value: str) -> str:
    """An absolute http(s) URL with a host, at most MAX_URL_LENGTH characters (pydantic
    validator: the ValueError's message becomes the 422 sentence)."""
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"a webhook URL is at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("a webhook URL has no spaces or control characters")
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError(f"expected an absolute http:// or https:// URL, such as {_EXAMPLE}")
    if parts.fragment:
        raise ValueError("a webhook URL has no #fragment (it is never sent to the server)")
    return value


WebhookUrl = Annotated[StrictStr, AfterValidator(check_url)]


def sends_to(url: str, settings: Settings) -> bool:
    """Whether events may go to `url`: in production (transcripts, summaries) never
    unencrypted."""
    return settings.ENVIRONMENT is not Environment.production or urlsplit(url).scheme == "https"


def require_https(url: str | None, settings: Settings) -> None:
    """The API's check of a new webhook_url: see sends_to."""
    if url is not None and not sends_to(url, settings):
        raise InvalidInput(
            f"webhook_url must start with https:// in production (ENVIRONMENT=production): "
            f"events carry transcripts, which must not travel unencrypted (got {url!r})."
        )
