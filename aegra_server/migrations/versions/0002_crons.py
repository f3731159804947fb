"""Crons: runs created on a schedule, on a thread or stateless.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "crons",
        sa.Column("cron_id", sa.String(36), primary_key=True),
        # Deleting the assistant or the thread deletes its crons: a cron whose target is gone could never fire.
        sa.Column(
            "assistant_id",
            sa.String(36),
            sa.ForeignKey("assistants.assistant_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "thread_id",
            sa.String(36),
            sa.ForeignKey("threads.thread_id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("schedule", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=True),
        sa.Column("payload", Json, nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("on_run_completed", sa.String(16), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("end_time", Timestamp, nullable=True),
        sa.Column("next_run_date", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
    )
    op.create_index("ix_crons_next_run_date", "crons", ["next_run_date"])
    op.create_index("ix_crons_assistant_id", "crons", ["assistant_id"])
    op.create_index("ix_crons_thread_id", "crons", ["thread_id"])
    op.create_index("ix_crons_created_at", "crons", ["created_at"])


def downgrade() -> None:
    op.drop_table("crons")
