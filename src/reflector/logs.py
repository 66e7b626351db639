"""structlog set-up: one line per event, request/job ids bound from context, secrets masked."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from reflector.settings import LogFormat

_SENSITIVE_KEY = re.compile(r"(secret|token|password|authorization|api_key|signature)", re.I)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
# Libraries that print credentials in their DEBUG lines: botocore each request's Authorization
# header (which names the access key), urllib3 each URL (a signed link's X-Amz-Credential),
# aiosqlite each statement's parameters (a room's webhook secret as it is stored). They stay at
# INFO or above whatever LOG_LEVEL says.
_DEBUG_LEAKS_SECRETS = ("botocore", "boto3", "s3transfer", "urllib3", "aiosqlite")


def _mask_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if key != "event" and _SENSITIVE_KEY.search(key) and value is not None:
            event_dict[key] = "***"
        elif isinstance(value, str) and "earer" in value:
            event_dict[key] = _BEARER.sub(r"\1***", value)
    return event_dict


class _CurrentStderr:
    """sys.stderr as it is at each write: test runners and daemons may replace it later."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO", fmt: LogFormat = LogFormat.console) -> None:
    floor = max(logging.INFO, logging.getLevelName(level))
    for name in _DEBUG_LEAKS_SECRETS:
        logging.getLogger(name).setLevel(floor)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt is LogFormat.json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
