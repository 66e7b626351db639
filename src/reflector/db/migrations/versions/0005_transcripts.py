"""transcripts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "transcripts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=False),
        sa.Column("recording_id", sa.String(length=40), nullable=True),
        sa.Column("meeting_id", sa.String(length=40), nullable=True),
        sa.Column("room_id", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("step", sa.String(length=20), nullable=True),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("storage_prefix", sa.String(length=1024), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("short_summary", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=10), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("document", sa.Text(), nullable=True),
        sa.Column("audio_key", sa.String(length=1024), nullable=True),
        sa.Column("playback_key", sa.String(length=1024), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_transcripts_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name=op.f("fk_transcripts_recording_id_recordings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["meeting_id"],
            ["meetings.id"],
            name=op.f("fk_transcripts_meeting_id_meetings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["rooms.id"],
            name=op.f("fk_transcripts_room_id_rooms"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcripts")),
        sa.UniqueConstraint("recording_id", name=op.f("uq_transcripts_recording_id")),
    )
    op.create_index(op.f("ix_transcripts_owner_id"), "transcripts", ["owner_id"])
    op.create_index(op.f("ix_transcripts_meeting_id"), "transcripts", ["meeting_id"])
    op.create_index(op.f("ix_transcripts_room_id"), "transcripts", ["room_id"])
    op.create_index(op.f("ix_transcripts_status"), "transcripts", ["status"])


def downgrade() -> None:
    op.drop_table("transcripts")
