"""One error hierarchy and one JSON shape: {"error": "<code>", "detail": "<sentence>"}."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse


class AppError(Exception):
    """An error the API caller can act on. Subclasses fix the status code and error code."""

    status_code = 500
    code = "internal_error"

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})


class BadRequest(AppError):
    status_code = 400
    code = "bad_request"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class Gone(AppError):
    """The thing existed and was deleted on purpose (by retention): 410, not 404."""

    status_code = 410
    code = "gone"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"


class InvalidInput(AppError):
    """A value the caller sent that cannot be used; the detail says which and why."""

    status_code = 422
    code = "validation_error"


class RateLimited(AppError):
    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"


class BadGateway(AppError):
    status_code = 502
    code = "bad_gateway"


def error_body(code: str, detail: str) -> dict[str, str]:
    return {"error": code, "detail": detail}


def json_error(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, detail), status_code=status, headers=dict(headers or {}))


def error_response(exc: AppError) -> JSONResponse:
    return json_error(exc.status_code, exc.code, exc.detail, exc.headers)
