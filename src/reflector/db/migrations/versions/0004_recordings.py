"""recordings

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("bucket", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("meeting_id", sa.String(length=40), nullable=True),
        sa.Column("room_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("audio_key", sa.String(length=1024), nullable=True),
        sa.Column("playback_key", sa.String(length=1024), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("announcements", sa.Integer(), nullable=False),
        sa.Column("job_enqueued_at", _TS, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("processed_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["meeting_id"],
            ["meetings.id"],
            name=op.f("fk_recordings_meeting_id_meetings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_recordings_room_id_rooms"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.UniqueConstraint("bucket", "key", name=op.f("uq_recordings_bucket")),
    )
    op.create_index(op.f("ix_recordings_meeting_id"), "recordings", ["meeting_id"])
    op.create_index(op.f("ix_recordings_room_id"), "recordings", ["room_id"])
    op.create_index(op.f("ix_recordings_status"), "recordings", ["status"])


def downgrade() -> None:
    op.drop_table("recordings")
