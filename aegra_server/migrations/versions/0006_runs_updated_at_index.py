"""Runs indexed in the order they ended, for the sweeper that forgets their stored events.

The events a run streamed are stored where server processes share a database (one per token of a model's
answer), so that a join or a reconnect works on any process; the sweeper deletes them once the run has ended
longer ago than AEGRA_RUN_EVENTS_RETENTION_SECONDS. It walks the runs by `updated_at` (a run's last change is its
end), from where its previous sweep stopped.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_runs_updated_at", "runs", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_updated_at", table_name="runs")
