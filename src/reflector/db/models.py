"""Imports every feature's models so that Base.metadata knows all tables (Alembic, tests)."""

from reflector.auth.models import ApiToken, User
from reflector.db.base import Base
from reflector.rooms.models import Room

__all__ = ["ApiToken", "Base", "Room", "User"]
