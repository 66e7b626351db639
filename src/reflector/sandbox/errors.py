"""The sandbox's one error: a status code and Whereby's body shape, `{"error": "<message>"}`
(plus `data` where Whereby adds it, as on 429)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse


class SandboxError(Exception):
    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = dict(headers or {})
        self.data = data

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.message}
        if self.data is not None:
            body["data"] = self.data
        return JSONResponse(body, status_code=self.status_code, headers=self.headers)


def bad_request(message: str) -> SandboxError:
    return SandboxError(400, message)


def not_found(message: str) -> SandboxError:
    return SandboxError(404, message)


def conflict(message: str) -> SandboxError:
    return SandboxError(409, message)
