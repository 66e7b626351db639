"""The one place that reads configuration: environment variables and the `.env` file."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, HttpUrl, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    production = "production"


class LogFormat(StrEnum):
    console = "console"
    json = "json"


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line naming the variable."""


class Settings(BaseSettings):
    """Every environment variable Reflector reads. Field names are the variable names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=True,
        extra="ignore",
        validate_default=True,
    )

    ENVIRONMENT: Environment = Field(
        Environment.development, description="`development` or `production`."
    )
    DATA_DIR: Path = Field(
        Path("./data"),
        description="Folder for the embedded SQLite database, local recordings and derived files.",
    )
    DATABASE_URL: str | None = Field(
        None,
        description=(
            "SQLAlchemy async URL, e.g. `postgresql+asyncpg://user@host/db`. "
            "Default: a SQLite file under DATA_DIR."
        ),
    )
    BASE_URL: HttpUrl = Field(
        HttpUrl("http://127.0.0.1:1250"),
        description="The public URL of this service (links in pages and webhooks).",
    )
    LOG_LEVEL: Annotated[str, Field(pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")] = Field(
        "INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL."
    )
    LOG_FORMAT: LogFormat = Field(
        LogFormat.console, description="`console` (human) or `json` (one object per line)."
    )
    MAX_REQUEST_BODY_BYTES: int = Field(
        64 * 1024, ge=1024, description="Largest JSON request body accepted, in bytes."
    )
    ADMIN_EMAIL: str = Field(
        "admin@localhost",
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="E-mail of the admin user created on the very first start.",
    )

    # Whereby (names from the Whereby set-up guide).
    WHEREBY_API_KEY: SecretStr | None = Field(None, description="Whereby REST API key.")
    WHEREBY_WEBHOOK_SECRET: SecretStr | None = Field(
        None, description="Secret that signs Whereby webhooks."
    )
    WHEREBY_API_URL: HttpUrl = Field(
        HttpUrl("https://api.whereby.dev/v1"), description="Whereby REST API base URL."
    )
    AWS_WHEREBY_ACCESS_KEY_ID: SecretStr | None = Field(
        None, description="Access key Whereby uses to write recordings to the bucket."
    )
    AWS_WHEREBY_ACCESS_KEY_SECRET: SecretStr | None = Field(
        None, description="Secret of AWS_WHEREBY_ACCESS_KEY_ID."
    )
    RECORDING_STORAGE_AWS_BUCKET_NAME: str | None = Field(
        None, description="S3 bucket Whereby records into (may carry a sub-folder: bucket/path)."
    )
    AWS_PROCESS_RECORDING_QUEUE_URL: HttpUrl | None = Field(
        None, description="SQS queue URL that receives the bucket's ObjectCreated notifications."
    )
    SQS_POLLING_TIMEOUT_SECONDS: int = Field(
        60, ge=1, description="Long-poll wait per receive, in seconds (SQS caps it at 20)."
    )

    @field_validator(
        "WHEREBY_API_KEY",
        "WHEREBY_WEBHOOK_SECRET",
        "AWS_WHEREBY_ACCESS_KEY_ID",
        "AWS_WHEREBY_ACCESS_KEY_SECRET",
        "RECORDING_STORAGE_AWS_BUCKET_NAME",
        "AWS_PROCESS_RECORDING_QUEUE_URL",
        "DATABASE_URL",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `VAR=` in a .env file means "not configured", not "configured as the empty string".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("DATABASE_URL")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(("postgres://", "postgresql://")):
            # The common libpq spelling; Reflector talks to PostgreSQL through asyncpg.
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite://"):
            return "sqlite+aiosqlite://" + value.split("://", 1)[1]
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError(
                "expected a URL starting with postgresql+asyncpg:// or sqlite+aiosqlite://"
            )
        return value

    @property
    def database_url(self) -> str:
        if self.DATABASE_URL:
            return self.DATABASE_URL
        return f"sqlite+aiosqlite:///{(self.DATA_DIR / 'reflector.sqlite3').resolve()}"

    @property
    def whereby_configured(self) -> bool:
        return self.WHEREBY_API_KEY is not None


def _describe(error: Any) -> str:
    loc = ".".join(str(part) for part in error.get("loc", ())) or "settings"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    given = error.get("input")
    secret = "KEY" in loc or "SECRET" in loc or "PASSWORD" in loc
    shown = "" if secret or isinstance(given, dict) else f" (got {given!r})"
    return f"{loc}: {message}{shown}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning a validation failure into one readable line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ConfigError(f"Configuration error: {problems}.") from None
