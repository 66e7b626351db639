"""The `reflector` command: serve, migrate, users, tokens."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from reflector.auth import service as auth
from reflector.db import migrate as migrations
from reflector.db.engine import create_engine, create_session_factory
from reflector.errors import AppError
from reflector.logs import configure_logging
from reflector.settings import ENV_FILE_VARIABLE, ConfigError, Settings, load_settings

T = TypeVar("T")

app = typer.Typer(
    help="Reflector: a self-hosted service that gives video meetings a memory.",
    no_args_is_help=True,
    add_completion=False,
)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")


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

    try:
        return asyncio.run(main())
    except AppError as exc:
        raise _fail(f"error: {exc.detail}") from None


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


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 1250,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes (each with its own event loop).")
    ] = 1,
) -> None:
    """Apply migrations, create the first admin on an empty database, and serve the API."""
    import uvicorn

    from reflector.app import create_app

    settings = _settings(ctx)

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

    try:
        issued = asyncio.run(prepare())
    except AppError as exc:
        raise _fail(f"error: {exc.detail}") from None
    if issued is not None:
        base = (
            str(settings.BASE_URL).rstrip("/")
            if "BASE_URL" in settings.model_fields_set
            else f"http://{host}:{port}"
        )
        _announce_admin(settings.ADMIN_EMAIL, base, issued)
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

    typer.echo(f"database schema at revision {asyncio.run(main()) or 'base (empty)'}")


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


def main() -> None:
    app()
