"""Turns FastAPI/pydantic validation errors into one status, one code and one sentence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_MAX_SHOWN_INPUT = 60


def _where(loc: Sequence[Any]) -> tuple[str, str]:
    source = str(loc[0]) if loc else "body"
    path = ".".join(str(part) for part in loc[1:])
    return source, path


def _shown(value: Any, message: str) -> str:
    if isinstance(value, dict | list | bytes):
        return ""
    text = repr(value)
    if text in message:
        return ""
    if len(text) > _MAX_SHOWN_INPUT:
        text = text[: _MAX_SHOWN_INPUT - 3] + "..."
    return f" (got {text})"


def _sentence(error: dict[str, Any]) -> str:
    source, path = _where(error.get("loc", ()))
    kind = error.get("type", "")
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    if source == "body" and not path:
        if kind in {"model_attributes_type", "dict_type"}:
            return "the body must be a JSON object"
        return message
    label = path if source == "body" else f"{source} parameter {path}"
    if kind == "missing":
        return f"{label} is required"
    return f"{label}: {message}{_shown(error.get('input'), message)}"


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def describe_validation_error(
    errors: Sequence[Any], content_type: str | None = None
) -> tuple[int, str, str]:
    """(status, error code, detail) for a list of validation errors of one request."""
    # An undecoded (bytes) body means the framework did not read it as JSON.
    unparsed = any(
        tuple(error.get("loc", ()))[:1] == ("body",) and isinstance(error.get("input"), bytes)
        for error in errors
    )
    if unparsed and not _is_json(content_type):
        return (
            415,
            "unsupported_media_type",
            f"The body was sent as {content_type or 'no content type'!r}; send JSON with "
            "'Content-Type: application/json'.",
        )
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "malformed JSON")
            return (
                400,
                "invalid_json",
                f"The request body is not valid JSON ({reason}); send a JSON object.",
            )
        if error.get("type") == "missing" and tuple(error.get("loc", ())) == ("body",):
            return 400, "missing_body", "This route needs a JSON object as the request body."
    sentences = [_sentence(error) for error in errors]
    return 422, "validation_error", "Invalid request: " + "; ".join(sentences) + "."
