"""create_app(): routers, error handlers, middleware and lifespan."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException

from reflector import __version__
from reflector.auth.routes import router as auth_router
from reflector.background import Background
from reflector.db.engine import create_engine, create_session_factory
from reflector.errors import AppError, error_response, json_error
from reflector.health import router as health_router
from reflector.jobs.celery_app import create_celery_app
from reflector.jobs.queue import CeleryJobQueue, JobQueue
from reflector.logs import configure_logging, get_logger
from reflector.meetings.routes import router as meetings_router
from reflector.metrics.routes import MetricsExporter
from reflector.metrics.routes import router as metrics_router
from reflector.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from reflector.platforms.base import VideoPlatform
from reflector.platforms.registry import build_platforms
from reflector.platforms.whereby.routes import router as whereby_router
from reflector.recordings.intake import Intake
from reflector.recordings.routes import router as recordings_router
from reflector.recordings.storage import derived_storage, recording_storage
from reflector.room_webhooks.routes import router as room_webhooks_router
from reflector.rooms.routes import router as rooms_router
from reflector.security import install_security, security_headers
from reflector.settings import Settings, settings_from_environment
from reflector.transcripts.routes import router as transcripts_router
from reflector.transcripts.search_routes import router as transcript_search_router
from reflector.validation import describe_validation_error
from reflector.web.routes import router as web_router
from reflector.webhooks.ratelimit import WebhookLimiter
from reflector.webhooks.routes import WebhookLane, webhook_router

_MULTIPART_ALLOWANCE = 1 << 20
_log = get_logger("reflector.app")

_SHUTDOWN_GRACE_SECONDS = 2.0

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def create_app(
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    platforms: dict[str, VideoPlatform] | None = None,
    jobs: JobQueue | None = None,
    background: bool = True,
) -> FastAPI:
    """Build the application.

    `engine` shares a database engine (tests); `platforms` and `jobs` replace the registry's
    platforms and the Celery queue (fakes at the Protocol seams); `background=False` skips the
    periodic work (meeting lifecycle, bucket reconciler, SQS consumer).
    """
    owns_engine = engine is None
    engine = engine or create_engine(
        settings.database_url,
        pool_size=settings.DATABASE_POOL_SIZE,
        max_overflow=settings.DATABASE_MAX_OVERFLOW,
    )
    http = httpx.AsyncClient(timeout=settings.WHEREBY_HTTP_TIMEOUT_SECONDS)
    session_factory = create_session_factory(engine)
    platforms = platforms if platforms is not None else build_platforms(settings, http)
    intake = Intake(engine, jobs or CeleryJobQueue(create_celery_app(settings)))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Everything alive now (modules, routes, compiled schemas) lives as long as the
        # process: moving it out of the collector's view keeps full collections short (p99 of
        # GET /health under 32 connections went from ~110 ms to ~30 ms).
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        tasks: list[asyncio.Future[None]] = []
        if background:
            work = Background(
                settings, engine, session_factory, platforms, intake, recording_storage(settings)
            )
            tasks = [asyncio.ensure_future(loop) for loop in work.loops(stop)]
        try:
            yield
        finally:
            stop.set()
            # A loop may be inside a 20 s SQS long poll: a short grace, then cancel. Whatever a
            # cancelled poll received reappears on the queue after its visibility timeout.
            if tasks:
                _done, pending = await asyncio.wait(tasks, timeout=_SHUTDOWN_GRACE_SECONDS)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            await http.aclose()
            if owns_engine:
                await engine.dispose()

    app = FastAPI(
        title="Reflector",
        version=__version__,
        description="Rooms, meetings, recordings and transcripts. Authenticate with "
        "`Authorization: Bearer <token>`.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.platforms = platforms
    app.state.whereby_api_check = {}
    app.state.intake = intake
    app.state.jobs = intake.jobs
    # One per app: an S3 client is costly to make.
    app.state.derived_storage = derived_storage(settings)
    app.state.metrics = MetricsExporter(
        engine,
        version=__version__,
        platforms=list(platforms),
        # The bucket's name, never a local path: /metrics needs no token.
        derived_label=getattr(app.state.derived_storage, "bucket", "local"),
    )
    app.state.webhook_limiter = WebhookLimiter(
        failures_per_minute=settings.WEBHOOK_FAILED_REQUESTS_PER_MINUTE,
        requests_per_minute=settings.WEBHOOK_REQUESTS_PER_MINUTE,
        redis_url=settings.REDIS_URL,
    )

    # For the API description and other methods' 405: WebhookLane (below) answers the POSTs.
    for name in platforms:
        app.include_router(webhook_router(name))
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(auth_router)
    app.include_router(rooms_router)
    app.include_router(room_webhooks_router)
    app.include_router(meetings_router)
    app.include_router(whereby_router)
    app.include_router(recordings_router)
    # Before /v1/transcripts/{id}, which would take "search" for an id.
    app.include_router(transcript_search_router)
    app.include_router(transcripts_router)
    app.include_router(web_router)

    _install_error_handlers(app)
    # Innermost of ours: the busiest path skips FastAPI's routing; the body limit, request ids
    # and security headers added below still wrap it.
    app.add_middleware(WebhookLane, platforms=list(platforms))
    app.add_middleware(
        BodySizeLimitMiddleware,
        limit_for=lambda path: (
            # The file may be MAX_UPLOAD_BYTES; the multipart framing around it is extra.
            (settings.MAX_UPLOAD_BYTES + _MULTIPART_ALLOWANCE, "MAX_UPLOAD_BYTES")
            if path.rstrip("/") == "/v1/transcripts"
            else (settings.MAX_REQUEST_BODY_BYTES, "MAX_REQUEST_BODY_BYTES")
        ),
    )
    app.add_middleware(RequestIdMiddleware)
    # Outermost: CORS answers preflights, and every answer gets the security headers.
    install_security(app, settings)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(_request: Request, exc: AppError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type")
        status, code, detail = describe_validation_error(exc.errors(), content_type)
        return json_error(status, code, detail)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no {request.url.path}; the API is described at /docs."
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs."
        headers: Any = getattr(exc, "headers", None)
        return json_error(exc.status_code, code, detail, headers)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
            # The pool has dropped the broken connection(s); the next try gets fresh ones.
            _log.warning("database connection lost", error=str(exc.orig))
            return json_error(
                503,
                "database_unavailable",
                "The database connection was lost; nothing was changed. Try again.",
                {"Retry-After": "1"},
            )
        return await unexpected_error(request, exc)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "unknown")
        _log.error("unhandled error", exc_info=exc)
        return json_error(
            500,
            "internal_error",
            f"Something went wrong on our side (request id {request_id}); "
            "the server log has the details under that id.",
            security_headers(request.app.state.settings),
        )


def app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` worker processes (reflector serve --workers N)."""
    settings = settings_from_environment()
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    return create_app(settings)
