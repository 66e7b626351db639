"""Database engine, sessions and the ORM base; Alembic migrations live in migrations/."""
