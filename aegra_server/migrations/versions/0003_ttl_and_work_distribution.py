"""Thread time-to-live, and runs shared out between server processes.

Threads get `ttl` and `expires_at` for the sweeper. Runs get a lease (`owner`, `lease_until`), the time they
may start (`available_at`), an attempt counter, a pending cross-process cancel and their error; `run_events`
lets a process stream a run that another process executes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-05-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("threads", sa.Column("ttl", Json, nullable=True))
    op.add_column("threads", sa.Column("expires_at", Timestamp, nullable=True))
    op.create_index("ix_threads_expires_at", "threads", ["expires_at"])

    # `available_at` and `attempt` are NOT NULL: add them nullable, fill in existing runs (available since
    # they were created, first attempt), then tighten. Batch mode: SQLite cannot ALTER a column's nullability.
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_until", Timestamp, nullable=True))
        batch.add_column(sa.Column("available_at", Timestamp, nullable=True))
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("cancel_action", sa.String(16), nullable=True))
        batch.add_column(sa.Column("error", Json, nullable=True))
    runs = sa.table(
        "runs",
        sa.column("created_at", Timestamp),
        sa.column("available_at", Timestamp),
        sa.column("attempt", sa.Integer()),
    )
    op.execute(runs.update().values(available_at=runs.c.created_at, attempt=1))
    with op.batch_alter_table("runs") as batch:
        batch.alter_column("available_at", existing_type=Timestamp, nullable=False)
        batch.alter_column("attempt", existing_type=sa.Integer(), nullable=False)
    op.create_index("ix_runs_claimable", "runs", ["status", "available_at"])

    op.create_table(
        "run_events",
        sa.Column(
            "run_id",
            sa.String(36),
            sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("run_events")
    op.drop_index("ix_runs_claimable", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        for column in ("error", "cancel_action", "attempt", "available_at", "lease_until", "owner"):
            batch.drop_column(column)
    op.drop_index("ix_threads_expires_at", table_name="threads")
    with op.batch_alter_table("threads") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("ttl")
