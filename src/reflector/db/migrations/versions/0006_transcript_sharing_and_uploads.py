"""transcript share mode and uploads

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transcripts") as batch:
        batch.add_column(
            sa.Column("share_mode", sa.String(length=10), nullable=False, server_default="private")
        )
        batch.add_column(sa.Column("filename", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("source_key", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transcripts") as batch:
        batch.drop_column("source_key")
        batch.drop_column("filename")
        batch.drop_column("share_mode")
