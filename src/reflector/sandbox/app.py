"""create_sandbox_app(): the Whereby API, the control API and the room pages in one app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from reflector.sandbox.api import api_router
from reflector.sandbox.config import SandboxConfig
from reflector.sandbox.control import control_router
from reflector.sandbox.engine import Sandbox
from reflector.sandbox.errors import SandboxError
from reflector.sandbox.guard import ApiGuard
from reflector.sandbox.pages import pages_router
from reflector.validation import describe_validation_error


def create_sandbox_app(config: SandboxConfig) -> FastAPI:
    """A fresh sandbox with empty state; `app.state.sandbox` is its `Sandbox`."""
    sandbox = Sandbox(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await sandbox.aclose()

    app = FastAPI(
        title="Whereby sandbox",
        description="A local stand-in for the Whereby REST API and its webhooks.",
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    # Route order matters: the room page's `/{room_name}` must come last.
    app.include_router(api_router(sandbox))
    app.include_router(control_router(sandbox))
    app.include_router(pages_router(sandbox))
    app.add_middleware(ApiGuard, state=sandbox.state, api_key=config.api_key)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def sandbox_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SandboxError)
        return exc.response()

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        _status, _code, detail = describe_validation_error(
            exc.errors(), request.headers.get("content-type")
        )
        return JSONResponse({"error": detail}, status_code=400)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse(
            {"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    app.add_exception_handler(SandboxError, sandbox_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
