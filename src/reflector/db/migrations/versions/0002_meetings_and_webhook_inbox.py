"""meetings, participants, sessions, meeting claims and the webhook inbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "meetings",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("room_id", sa.String(length=40), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("platform_meeting_id", sa.String(length=100), nullable=False),
        sa.Column("platform_room_name", sa.String(length=200), nullable=False),
        sa.Column("room_url", sa.Text(), nullable=False),
        sa.Column("host_room_url", sa.Text(), nullable=True),
        sa.Column("start_date", _TS, nullable=False),
        sa.Column("end_date", _TS, nullable=False),
        sa.Column("room_settings", sa.JSON(), nullable=False),
        sa.Column("num_clients", sa.Integer(), nullable=False),
        sa.Column("num_clients_by_role", sa.JSON(), nullable=False),
        sa.Column("counts_event_at", _TS, nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("end_reason", sa.String(length=100), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_meetings_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meetings")),
        sa.UniqueConstraint("platform", "platform_meeting_id", name=op.f("uq_meetings_platform")),
        sa.UniqueConstraint("platform_room_name", name=op.f("uq_meetings_platform_room_name")),
    )
    op.create_index(op.f("ix_meetings_room_id"), "meetings", ["room_id"])
    op.create_index(
        "uq_meetings_active_room",
        "meetings",
        ["room_id"],
        unique=True,
        sqlite_where=sa.text("is_active"),
        postgresql_where=sa.text("is_active"),
    )
    op.create_table(
        "meeting_claims",
        sa.Column("room_id", sa.String(length=40), nullable=False),
        sa.Column("claim_id", sa.String(length=40), nullable=False),
        sa.Column("claimed_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["rooms.id"],
            name=op.f("fk_meeting_claims_room_id_rooms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("room_id", name=op.f("pk_meeting_claims")),
    )
    op.create_table(
        "participants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("meeting_id", sa.String(length=40), nullable=False),
        sa.Column("participant_id", sa.String(length=200), nullable=False),
        sa.Column("display_name", sa.String(length=500), nullable=True),
        sa.Column("role_name", sa.String(length=50), nullable=True),
        sa.Column("external_id", sa.String(length=500), nullable=True),
        sa.Column("joined_at", _TS, nullable=True),
        sa.Column("left_at", _TS, nullable=True),
        sa.Column("present", sa.Boolean(), nullable=False),
        sa.Column("state_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["meeting_id"],
            ["meetings.id"],
            name=op.f("fk_participants_meeting_id_meetings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participants")),
        sa.UniqueConstraint(
            "meeting_id", "participant_id", name=op.f("uq_participants_meeting_id")
        ),
    )
    op.create_table(
        "meeting_sessions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("meeting_id", sa.String(length=40), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("ended_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["meeting_id"],
            ["meetings.id"],
            name=op.f("fk_meeting_sessions_meeting_id_meetings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meeting_sessions")),
        sa.UniqueConstraint(
            "meeting_id", "session_id", name=op.f("uq_meeting_sessions_meeting_id")
        ),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("meeting_id", sa.String(length=40), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["meeting_id"],
            ["meetings.id"],
            name=op.f("fk_webhook_events_meeting_id_meetings"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
    )
    op.create_index(op.f("ix_webhook_events_meeting_id"), "webhook_events", ["meeting_id"])
    op.create_index(op.f("ix_webhook_events_received_at"), "webhook_events", ["received_at"])
    op.create_index(op.f("ix_webhook_events_type"), "webhook_events", ["type"])
    op.create_table(
        "webhook_rejections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=50), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.Column("received_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_rejections")),
    )
    op.create_index(
        op.f("ix_webhook_rejections_received_at"), "webhook_rejections", ["received_at"]
    )


def downgrade() -> None:
    op.drop_table("webhook_rejections")
    op.drop_table("webhook_events")
    op.drop_table("meeting_sessions")
    op.drop_table("participants")
    op.drop_table("meeting_claims")
    op.drop_index("uq_meetings_active_room", table_name="meetings")
    op.drop_index(op.f("ix_meetings_room_id"), table_name="meetings")
    op.drop_table("meetings")
