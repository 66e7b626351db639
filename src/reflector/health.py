"""GET /health: is the service up and can it reach its database."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from reflector import __version__
from reflector.deps import SessionDep
from reflector.errors import ServiceUnavailable
from reflector.logs import get_logger

router = APIRouter(tags=["health"])
_log = get_logger("reflector.health")


class Health(BaseModel):
    status: str
    database: str
    version: str


@router.get("/health", summary="Liveness and database check (no token needed)")
async def health(session: SessionDep) -> Health:
    try:
        await session.execute(text("SELECT 1"))
    except Exception as exc:
        _log.warning("health check: database unreachable", error=str(exc))
        raise ServiceUnavailable(
            "The database does not answer; check DATABASE_URL and that the server is running."
        ) from None
    return Health(status="ok", database="ok", version=__version__)
