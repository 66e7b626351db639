"""operations: retention, outgoing webhooks, metric counters

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

_TS = sa.DateTime(timezone=True)

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rooms") as batch:
        batch.add_column(sa.Column("webhook_url", sa.String(length=2048), nullable=True))
        batch.add_column(sa.Column("webhook_secret", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("retention_recording_days", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("retention_audio_days", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("retention_transcript_days", sa.Integer(), nullable=True))
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(sa.Column("object_deleted_at", _TS, nullable=True))
        # Copies of its transcript's keys, which retention would have to keep in step.
        batch.drop_column("playback_key")
        batch.drop_column("audio_key")
    with op.batch_alter_table("transcripts") as batch:
        batch.add_column(sa.Column("audio_deleted_at", _TS, nullable=True))
        batch.add_column(sa.Column("stored_bytes", sa.BigInteger(), nullable=True))

    op.create_table(
        "retention_deletions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("deleted_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_deletions")),
    )
    op.create_index(
        op.f("ix_retention_deletions_subject_id"), "retention_deletions", ["subject_id"]
    )
    op.create_index(
        op.f("ix_retention_deletions_deleted_at"), "retention_deletions", ["deleted_at"]
    )

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("room_id", sa.String(length=40), nullable=False),
        sa.Column("event", sa.String(length=50), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["rooms.id"],
            name=op.f("fk_webhook_deliveries_room_id_rooms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(op.f("ix_webhook_deliveries_room_id"), "webhook_deliveries", ["room_id"])
    op.create_index(op.f("ix_webhook_deliveries_status"), "webhook_deliveries", ["status"])
    op.create_index(
        op.f("ix_webhook_deliveries_next_attempt_at"), "webhook_deliveries", ["next_attempt_at"]
    )

    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("attempted_at", _TS, nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index(op.f("ix_webhook_attempts_delivery_id"), "webhook_attempts", ["delivery_id"])

    op.create_table(
        "metric_counters",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("labels", sa.String(length=500), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", "labels", name=op.f("pk_metric_counters")),
    )


def downgrade() -> None:
    op.drop_table("metric_counters")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("retention_deletions")
    with op.batch_alter_table("transcripts") as batch:
        batch.drop_column("stored_bytes")
        batch.drop_column("audio_deleted_at")
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("object_deleted_at")
        batch.add_column(sa.Column("audio_key", sa.String(length=1024), nullable=True))
        batch.add_column(sa.Column("playback_key", sa.String(length=1024), nullable=True))
    with op.batch_alter_table("rooms") as batch:
        batch.drop_column("retention_transcript_days")
        batch.drop_column("retention_audio_days")
        batch.drop_column("retention_recording_days")
        batch.drop_column("webhook_secret")
        batch.drop_column("webhook_url")
