"""webhook_events.meeting_id without a foreign key

Every stored event's foreign-key check took a KEY SHARE lock on its meeting's row while other
events held that row's update lock, so PostgreSQL made a MultiXact for nearly every event of a
busy meeting (about 18 MultiXact SLRU lookups per event). The audit log now keeps the id of the
meeting an event named, also after that meeting is deleted with its room.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FK = "fk_webhook_events_meeting_id_meetings"


def upgrade() -> None:
    with op.batch_alter_table("webhook_events") as batch:
        batch.drop_constraint(_FK, type_="foreignkey")


def downgrade() -> None:
    # Ids of meetings deleted since the upgrade would fail the restored constraint.
    op.execute(
        sa.text(
            "UPDATE webhook_events SET meeting_id = NULL WHERE meeting_id IS NOT NULL "
            "AND meeting_id NOT IN (SELECT id FROM meetings)"
        )
    )
    with op.batch_alter_table("webhook_events") as batch:
        batch.create_foreign_key(_FK, "meetings", ["meeting_id"], ["id"], ondelete="SET NULL")
