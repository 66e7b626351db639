"""The `reflector` command: serve, worker, process, migrate, users, tokens, recordings, rooms,
retention, sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import HttpUrl, SecretStr
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from reflector.auth import service as auth
from reflector.db import migrate as migrations
from reflector.db.engine import create_engine, create_session_factory
from reflector.errors import AppError
from reflector.jobs.celery_app import QUEUES, broker_url, create_celery_app, is_embedded
from reflector.jobs.queue import CeleryJobQueue
from reflector.jobs.worker import EmbeddedWorker, run_worker
from reflector.logs import configure_logging
from reflector.recordings.intake import Intake
from reflector.recordings.models import Recording
from reflector.sandbox.defaults import SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET
from reflector.settings import (
    ENV_FILE_VARIABLE,
    ConfigError,
    DiarizeBackend,
    Environment,
    Settings,
    load_settings,
)

T = TypeVar("T")

if TYPE_CHECKING:
    from reflector.sandbox import SandboxConfig

app = typer.Typer(
    help="Reflector: a self-hosted service that gives video meetings a memory.",
    no_args_is_help=True,
    add_completion=False,
)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
recordings_app = typer.Typer(help="Recordings and their processing.", no_args_is_help=True)
app.add_typer(recordings_app, name="recordings")
rooms_app = typer.Typer(help="Rooms of every user (admin commands).", no_args_is_help=True)
app.add_typer(rooms_app, name="rooms")


class ExportChoice(StrEnum):
    json = "json"
    vtt = "vtt"
    srt = "srt"
    md = "md"
    txt = "txt"


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _settings(ctx: typer.Context) -> Settings:
    env_file: Path = ctx.obj["env_file"]
    try:
        settings = load_settings(_env_file=env_file if env_file.exists() else None)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    logging.basicConfig(level=settings.LOG_LEVEL, stream=sys.stderr, format="%(message)s")
    return settings


def _run(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one committed transaction on a database at the current schema."""

    async def main() -> T:
        engine = create_engine(settings.database_url)
        try:
            await _require_current_schema(engine)
            async with create_session_factory(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return _call(main())


def _call(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's async body. A refusal (AppError) or a database that does not answer
    ends the command with one line on stderr, not a traceback."""
    try:
        return asyncio.run(work)
    except AppError as exc:
        raise _fail(f"error: {exc.detail}") from None
    except (OSError, OperationalError, InterfaceError) as exc:
        cause = getattr(exc, "orig", None) or exc
        raise _fail(
            f"error: the database does not answer ({type(cause).__name__}: {cause}); check "
            "DATABASE_URL and that the database server is running."
        ) from None


async def _require_current_schema(engine: AsyncEngine) -> None:
    current, head = await migrations.current_revision(engine), migrations.head_revision()
    if current != head:
        raise _fail(
            f"error: the database schema is at {current or 'nothing'} but this version needs "
            f"{head}; run 'reflector migrate' first."
        )


@app.callback()
def _root(
    ctx: typer.Context,
    env_file: Annotated[
        Path, typer.Option(help="Settings file read before the environment.")
    ] = Path(".env"),
) -> None:
    ctx.obj = {"env_file": env_file}


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 (a comparison)


def _sandbox_config(
    settings: Settings, *, host: str, port: int, webhook_url: str | None, audio: Path | None
) -> SandboxConfig:
    from reflector.sandbox import DEFAULT_AUDIO_FILE, SandboxConfig

    key = settings.WHEREBY_API_KEY
    secret = settings.WHEREBY_WEBHOOK_SECRET
    return SandboxConfig(
        api_key=key.get_secret_value() if key else SANDBOX_API_KEY,
        public_url=f"http://{_loopback(host)}:{port}",
        recordings_dir=settings.recordings_dir,
        s3_endpoint_url=settings.AWS_ENDPOINT_URL,
        webhook_url=webhook_url,
        webhook_secret=secret.get_secret_value() if secret else SANDBOX_WEBHOOK_SECRET,
        audio_file=audio or DEFAULT_AUDIO_FILE,
    )


def _start_sandbox_thread(config: SandboxConfig, host: str, port: int) -> None:
    """Run the sandbox beside the server, on its own event loop in a daemon thread, so that
    it works with any number of server worker processes and dies with this process."""
    from reflector.sandbox import serve_sandbox

    def run() -> None:
        asyncio.run(serve_sandbox(config, host, port))

    threading.Thread(target=run, name="whereby-sandbox", daemon=True).start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex((_loopback(host), port)) == 0:
                return
        time.sleep(0.05)
    raise _fail(f"error: the Whereby sandbox did not start on port {port}; is the port free?")


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 1250,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes (each with its own event loop).")
    ] = 1,
    sandbox: Annotated[
        bool,
        typer.Option(help="Start the local Whereby sandbox when WHEREBY_API_KEY is unset."),
    ] = True,
) -> None:
    """Apply migrations, create the first admin on an empty database, and serve the API."""
    settings = _settings(ctx)
    # Never in production: there the settings name real Whereby credentials (checked on load).
    if sandbox and settings.WHEREBY_API_KEY is None and not _production(settings):
        settings = _with_sandbox(settings, host, port)

    async def prepare() -> auth.IssuedToken | None:
        engine = create_engine(settings.database_url)
        try:
            await migrations.upgrade(engine)
            async with create_session_factory(engine)() as session:
                issued = await auth.bootstrap_admin(session, settings.ADMIN_EMAIL)
                await session.commit()
                return issued
        finally:
            await engine.dispose()

    issued = _call(prepare())
    if issued is not None:
        base = (
            str(settings.BASE_URL).rstrip("/")
            if "BASE_URL" in settings.model_fields_set
            else f"http://{host}:{port}"
        )
        _announce_admin(settings.ADMIN_EMAIL, base, issued)
    with contextlib.ExitStack() as stack:
        if is_embedded(broker_url(settings)):
            # Nothing to install: the jobs run in a worker process beside the server, on the
            # durable queue in DATA_DIR.
            env_file: Path = ctx.obj["env_file"]
            stack.enter_context(
                EmbeddedWorker(settings, env_file=env_file if env_file.exists() else None)
            )
            typer.echo("Jobs run in an embedded worker (queue in DATA_DIR/jobs.sqlite3).", err=True)
        _run_server(ctx, settings, host, port, workers)


def _run_server(ctx: typer.Context, settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    from reflector.app import create_app

    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)
        return
    # Worker processes build the app from an import string and read settings themselves.
    os.environ[ENV_FILE_VARIABLE] = str(ctx.obj["env_file"].resolve())
    uvicorn.run(
        "reflector.app:app_from_environment",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
    )


def _production(settings: Settings) -> bool:
    return settings.ENVIRONMENT is Environment.production


def _with_sandbox(settings: Settings, host: str, port: int) -> Settings:
    """Start the sandbox and point the Whereby settings at it."""
    sandbox_port = settings.WHEREBY_SANDBOX_PORT
    config = _sandbox_config(
        settings,
        host="127.0.0.1",
        port=sandbox_port,
        webhook_url=f"http://{_loopback(host)}:{port}/v1/whereby",
        audio=None,
    )
    _start_sandbox_thread(config, "127.0.0.1", sandbox_port)
    typer.echo(
        f"WHEREBY_API_KEY is not set: using the local Whereby sandbox at {config.base_url} "
        "(simulated meetings; open a meeting's room_url to join it, recordings go to "
        f"{config.recordings_dir}).",
        err=True,
    )
    api_url = f"{config.base_url}/v1"
    secret = config.webhook_secret or SANDBOX_WEBHOOK_SECRET
    # Worker processes (--workers) read their settings from the environment.
    os.environ.update(
        {
            "WHEREBY_API_URL": api_url,
            "WHEREBY_API_KEY": config.api_key,
            "WHEREBY_WEBHOOK_SECRET": secret,
            "WHEREBY_SANDBOX": "true",
        }
    )
    return settings.model_copy(
        update={
            "WHEREBY_SANDBOX": True,
            "WHEREBY_API_URL": HttpUrl(api_url),
            "WHEREBY_API_KEY": SecretStr(config.api_key),
            "WHEREBY_WEBHOOK_SECRET": SecretStr(secret),
        }
    )


def _announce_admin(email: str, base: str, issued: auth.IssuedToken) -> None:
    typer.echo(
        "\n".join(
            [
                f"First start: created the admin user {email}.",
                "Its API token is shown this once; keep it somewhere safe:",
                "",
                f"    {issued.secret}",
                "",
                f'Try it: curl -H "Authorization: Bearer {issued.secret}" {base}/v1/rooms',
                "",
            ]
        )
    )
    sys.stdout.flush()


@app.command()
def migrate(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    downgrade: Annotated[
        bool, typer.Option("--downgrade", help="Go down to REVISION ('base' = empty).")
    ] = False,
) -> None:
    """Bring the database schema to REVISION (default: the newest)."""
    settings = _settings(ctx)

    async def main() -> str | None:
        engine = create_engine(settings.database_url)
        try:
            if downgrade:
                await migrations.downgrade(engine, revision)
            else:
                await migrations.upgrade(engine, revision)
            return await migrations.current_revision(engine)
        finally:
            await engine.dispose()

    typer.echo(f"database schema at revision {_call(main()) or 'base (empty)'}")


@users_app.command("create")
def users_create(
    ctx: typer.Context,
    email: str,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
) -> None:
    """Create a user (then give them a token with 'reflector tokens create')."""
    settings = _settings(ctx)
    user = _run(settings, lambda session: auth.create_user(session, email, is_admin=admin))
    typer.echo(f"created user {user.email} ({user.id}){' as admin' if user.is_admin else ''}")


@users_app.command("list")
def users_list(ctx: typer.Context) -> None:
    """List users."""
    settings = _settings(ctx)
    for user in _run(settings, auth.list_users):
        typer.echo(f"{user.id}\t{user.email}\t{'admin' if user.is_admin else 'user'}")


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    email: str,
    name: Annotated[str, typer.Option(help="A label to tell tokens apart.")] = "default",
) -> None:
    """Create an API token for the user EMAIL and print it (only now: it is stored hashed)."""
    settings = _settings(ctx)

    async def work(session: AsyncSession) -> auth.IssuedToken:
        user = await auth.require_user_by_email(session, email)
        return await auth.create_token(session, user, name)

    issued = _run(settings, work)
    typer.echo(
        f"created token {issued.token.id} '{issued.token.name}' for {email}; "
        "it is shown only this once:",
        err=True,
    )
    typer.echo(issued.secret)


@tokens_app.command("list")
def tokens_list(
    ctx: typer.Context,
    email: Annotated[str | None, typer.Option(help="Only this user's tokens.")] = None,
) -> None:
    """List tokens (ids, names, prefixes; never the tokens themselves)."""
    settings = _settings(ctx)

    async def work(session: AsyncSession) -> list[tuple[str, str, str, str, str]]:
        user = await auth.require_user_by_email(session, email) if email else None
        owners = {u.id: u.email for u in await auth.list_users(session)}
        return [
            (
                token.id,
                owners.get(token.user_id, "?"),
                token.name,
                token.token_prefix + "...",
                "revoked" if token.revoked_at else "active",
            )
            for token in await auth.list_tokens(session, user)
        ]

    for row in _run(settings, work):
        typer.echo("\t".join(row))


@tokens_app.command("revoke")
def tokens_revoke(
    ctx: typer.Context, token_id: Annotated[str, typer.Argument(metavar="ID")]
) -> None:
    """Revoke the token ID; requests with it get 401 from now on."""
    settings = _settings(ctx)
    token = _run(settings, lambda session: auth.revoke_token(session, token_id))
    typer.echo(f"revoked token {token.id} '{token.name}'")


@app.command()
def worker(
    ctx: typer.Context,
    queues: Annotated[
        str | None,
        typer.Option(
            help=f"Comma-separated queues to take jobs from (default: all: {', '.join(QUEUES)})."
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs run at once.")] = 1,
) -> None:
    """Run a job worker (needs CELERY_BROKER_URL or REDIS_URL shared with the server, or the
    same DATA_DIR for the embedded queue)."""
    settings = _settings(ctx)
    # Tasks read their settings in the worker process; they must find the same file.
    os.environ[ENV_FILE_VARIABLE] = str(ctx.obj["env_file"].resolve())
    chosen = [name.strip() for name in queues.split(",") if name.strip()] if queues else None
    try:
        code = run_worker(settings, chosen, concurrency)
    except ValueError as exc:
        raise _fail(f"error: {exc}", 2) from None
    raise typer.Exit(code)


@recordings_app.command("list")
def recordings_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only recordings in this status.")] = None,
) -> None:
    """List recordings, newest first (all of them: this is an admin command)."""
    settings = _settings(ctx)

    async def work(session: AsyncSession) -> list[Recording]:
        query = select(Recording).order_by(Recording.created_at.desc())
        if status:
            query = query.where(Recording.status == status)
        return list(await session.scalars(query))

    for row in _run(settings, work):
        duration = f"{row.duration:.1f}s" if row.duration is not None else "-"
        typer.echo(f"{row.id}\t{row.status}\t{duration}\t{row.bucket}/{row.key}\t{row.error or ''}")


@recordings_app.command("retry")
def recordings_retry(
    ctx: typer.Context, recording_id: Annotated[str, typer.Argument(metavar="ID")]
) -> None:
    """Process a failed or unmatched recording again."""
    settings = _settings(ctx)

    async def main() -> bool:
        engine = create_engine(settings.database_url)
        try:
            await _require_current_schema(engine)
            intake = Intake(engine, CeleryJobQueue(create_celery_app(settings)))
            return await intake.retry(recording_id)
        finally:
            await engine.dispose()

    queued = _call(main())
    if not queued:
        raise _fail(
            f"error: no failed or unmatched recording {recording_id}; "
            "'reflector recordings list' shows ids and statuses."
        )
    typer.echo(f"recording {recording_id} queued again")


@app.command("retention")
def retention_command(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be deleted; change nothing.")
    ] = False,
) -> None:
    """Apply the retention policy now (the server does so every RETENTION_INTERVAL_SECONDS)
    and print each deletion: kind, id, where, why (tab-separated)."""
    from reflector.retention.apply import Deletions, run_retention, summary

    settings = _settings(ctx)

    async def main() -> Deletions:
        engine = create_engine(settings.database_url)
        try:
            await _require_current_schema(engine)
            return await run_retention(engine, settings, dry_run=dry_run)
        finally:
            await engine.dispose()

    done = _call(main())
    for deletion in done:
        typer.echo(deletion.line())
    typer.echo(summary(done, dry_run=dry_run), err=True)
    if done.failed:
        raise typer.Exit(1)


@rooms_app.command("migrate-platform")
def rooms_migrate_platform(
    ctx: typer.Context,
    old: Annotated[
        str, typer.Option("--from", help="Platform the rooms are on (may be one removed since).")
    ],
    new: Annotated[str, typer.Option("--to", help="Registered platform to move them to.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be done; change nothing.")
    ] = False,
) -> None:
    """Move every room on --from to --to, ending their active meetings on --from first (only
    here when --from is no longer registered)."""
    import httpx

    from reflector.platforms.registry import build_platforms, is_known_platform, platform_names
    from reflector.rooms import platform_migration

    settings = _settings(ctx)
    if not is_known_platform(new):
        raise _fail(
            f"error: --to {new!r} is not a registered platform; registered: "
            f"{', '.join(platform_names())}.",
            2,
        )
    if old == new:
        raise _fail(f"error: --from and --to are both {new!r}; there is nothing to move.", 2)

    async def work(session: AsyncSession) -> list[platform_migration.RoomMigration]:
        async with httpx.AsyncClient(timeout=settings.WHEREBY_HTTP_TIMEOUT_SECONDS) as http:
            return await platform_migration.migrate_platform(
                session,
                old,
                new,
                build_platforms(settings, http),
                dry_run=dry_run,
                report=lambda migration: typer.echo(migration.describe()),
            )

    migrations = _run(settings, work)
    typer.echo(platform_migration.summary(migrations, dry_run=dry_run))


@app.command("process")
def process_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Audio or video file (mp4, webm, mkv, m4a, ...).")],
    fmt: Annotated[
        ExportChoice, typer.Option("--format", "-f", help="Output format.")
    ] = ExportChoice.json,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    speakers: Annotated[
        int | None, typer.Option(min=1, max=50, help="Number of speakers, when known.")
    ] = None,
    language: Annotated[
        str | None,
        typer.Option(help="Spoken language (ISO 639-1, e.g. en) or auto; default from settings."),
    ] = None,
    diarizer: Annotated[
        DiarizeBackend | None,
        typer.Option(help="Who-spoke-when backend; default DIARIZE_BACKEND."),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Keep step outputs here; a later run with the same folder reuses them.",
        ),
    ] = None,
) -> None:
    """Transcribe, diarize and summarise one file here, without a server; print the result."""
    from reflector.pipeline.backends import shared_backends
    from reflector.pipeline.local_run import ProgressBar, process_file, write_output
    from reflector.pipeline.runner import PipelineError, Request

    settings = _settings(ctx)
    # Step logs would break the progress bar; warnings and errors still show.
    if settings.LOG_LEVEL not in ("DEBUG", "WARNING", "ERROR", "CRITICAL"):
        configure_logging("WARNING", settings.LOG_FORMAT)
        logging.getLogger().setLevel(logging.WARNING)
    if not file.is_file():
        raise _fail(f"error: {file} is not a file.", 2)
    chosen = settings.transcribe_language if language in (None, "auto") else language
    if chosen is not None and not re.fullmatch(r"[a-z]{2,3}", chosen):
        raise _fail(f"error: --language takes a code such as en or de, not {language!r}.", 2)
    request = Request(language=chosen, num_speakers=speakers)
    try:
        result = asyncio.run(
            process_file(
                file,
                shared_backends(settings, diarize=diarizer),
                request=request,
                workdir=workdir,
                progress=ProgressBar(sys.stderr),
            )
        )
    except PipelineError as exc:
        raise _fail(f"error: {file}: {exc}") from None
    write_output(result, fmt.value, output)


@app.command("sandbox")
def sandbox_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default WHEREBY_SANDBOX_PORT).")
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(help="Where to send webhooks (default: BASE_URL + /v1/whereby)."),
    ] = None,
    audio: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Audio file that recordings are made from."),
    ] = None,
) -> None:
    """Run the local Whereby sandbox on its own (REST API, room pages, webhooks, recordings).

    Its API key and webhook secret are WHEREBY_API_KEY and WHEREBY_WEBHOOK_SECRET when set,
    else the documented sandbox defaults."""
    from reflector.sandbox import serve_sandbox

    settings = _settings(ctx)
    port = port or settings.WHEREBY_SANDBOX_PORT
    target = webhook_url or str(settings.BASE_URL).rstrip("/") + "/v1/whereby"
    config = _sandbox_config(settings, host=host, port=port, webhook_url=target, audio=audio)
    typer.echo(
        f"Whereby sandbox at {config.base_url} (API {config.base_url}/v1, key "
        f"{'from WHEREBY_API_KEY' if settings.WHEREBY_API_KEY else repr(config.api_key)}); "
        f"webhooks to {target}; recordings into {config.recordings_dir}.",
        err=True,
    )
    asyncio.run(serve_sandbox(config, host, port))


def main() -> None:
    app()
