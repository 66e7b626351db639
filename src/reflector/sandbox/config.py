"""How a sandbox is set up: its API key, public URL, webhook target and recording storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
DEFAULT_AUDIO_FILE = ASSETS_DIR / "talk.m4a"


@dataclass(frozen=True)
class SandboxConfig:
    """Settings of one sandbox instance.

    Webhooks are sent only when both `webhook_url` and `webhook_secret` are set. Recordings are
    uploaded with boto3 to `s3_endpoint_url` when it is set and the meeting asked for an S3
    destination; otherwise they are written to `recordings_dir/<bucket>/<key>`.
    """

    api_key: str
    public_url: str
    recordings_dir: Path
    subdomain: str = "sandbox"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    s3_endpoint_url: str | None = None
    audio_file: Path = field(default=DEFAULT_AUDIO_FILE)
    session_end_delay_seconds: float = 0.0
    webhook_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("SandboxConfig.api_key must not be empty")
        if not self.public_url.startswith(("http://", "https://")):
            raise ValueError(
                f"SandboxConfig.public_url must start with http:// or https:// "
                f"(got {self.public_url!r})"
            )
        if self.session_end_delay_seconds < 0 or self.webhook_timeout_seconds <= 0:
            raise ValueError("SandboxConfig delays must be positive")

    @property
    def base_url(self) -> str:
        """public_url without a trailing slash: room URLs are this + the room name."""
        return self.public_url.rstrip("/")
