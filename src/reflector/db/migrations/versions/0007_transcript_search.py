"""transcript search index

One row per searchable piece of an ended transcript (title, summaries, topics, segments), kept
by reflector.transcripts.search and deliberately outside the ORM metadata: its full-text part
differs per database.

- PostgreSQL: `transcript_search` with a stored `tsvector` column (english) under a GIN index;
  its rows go with their transcript (foreign key, ON DELETE CASCADE).
- SQLite: the same `transcript_search` table, indexed by the FTS5 table `transcript_search_fts`
  (porter + unicode61 tokenizer, external content: the text is stored once). Triggers keep the
  index in step with the table, and a trigger on `transcripts` removes a deleted transcript's
  rows. (No foreign key here: a SQLite batch migration that rebuilds `transcripts` would cascade
  it and empty the index.)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_FTS = [
    """CREATE VIRTUAL TABLE transcript_search_fts USING fts5(
        body,
        content='transcript_search',
        content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER transcript_search_ai AFTER INSERT ON transcript_search BEGIN
        INSERT INTO transcript_search_fts(rowid, body) VALUES (new.id, new.body);
    END""",
    """CREATE TRIGGER transcript_search_ad AFTER DELETE ON transcript_search BEGIN
        INSERT INTO transcript_search_fts(transcript_search_fts, rowid, body)
        VALUES ('delete', old.id, old.body);
    END""",
    """CREATE TRIGGER transcript_search_au AFTER UPDATE ON transcript_search BEGIN
        INSERT INTO transcript_search_fts(transcript_search_fts, rowid, body)
        VALUES ('delete', old.id, old.body);
        INSERT INTO transcript_search_fts(rowid, body) VALUES (new.id, new.body);
    END""",
    """CREATE TRIGGER transcripts_search_cleanup AFTER DELETE ON transcripts BEGIN
        DELETE FROM transcript_search WHERE transcript_id = old.id;
    END""",
]


def _columns(dialect: str) -> list[sa.Column[Any]]:
    # SQLite: INTEGER PRIMARY KEY is the rowid, which the FTS5 index refers to.
    key_type = sa.BigInteger() if dialect == "postgresql" else sa.Integer()
    columns: list[sa.Column[Any]] = [
        sa.Column("id", key_type, primary_key=True, autoincrement=True),
        sa.Column("transcript_id", sa.String(length=40), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.Text(), nullable=True),
        sa.Column("start_time", sa.Float(), nullable=False),
        sa.Column("end_time", sa.Float(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    ]
    if dialect == "postgresql":
        columns.append(
            sa.Column(
                "search_vector",
                postgresql.TSVECTOR(),
                sa.Computed("to_tsvector('english'::regconfig, body)", persisted=True),
                nullable=False,
            )
        )
    return columns


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    constraints: list[sa.Constraint] = [sa.PrimaryKeyConstraint("id", name="pk_transcript_search")]
    if dialect == "postgresql":
        constraints.append(
            sa.ForeignKeyConstraint(
                ["transcript_id"],
                ["transcripts.id"],
                name="fk_transcript_search_transcript_id_transcripts",
                ondelete="CASCADE",
            )
        )
    op.create_table("transcript_search", *_columns(dialect), *constraints)
    # Replacing a transcript's rows looks them up by transcript; one row per (transcript, seq).
    op.create_index(
        "ix_transcript_search_transcript_id_seq",
        "transcript_search",
        ["transcript_id", "seq"],
        unique=True,
    )
    if dialect == "postgresql":
        op.create_index(
            "ix_transcript_search_search_vector",
            "transcript_search",
            ["search_vector"],
            postgresql_using="gin",
        )
    elif dialect == "sqlite":
        for statement in _SQLITE_FTS:
            op.execute(statement)
    else:
        raise NotImplementedError(f"transcript search has no index for {dialect}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in (
            "transcripts_search_cleanup",
            "transcript_search_au",
            "transcript_search_ad",
            "transcript_search_ai",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS transcript_search_fts")
    # Its indexes (and on PostgreSQL its foreign key) go with it.
    op.drop_table("transcript_search")
