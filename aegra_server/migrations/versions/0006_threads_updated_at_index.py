"""Threads indexed in the order they last changed: for searches sorted by it, and for the sweeper.

The events a run streamed are stored where server processes share a database (one per token of a model's
answer), so that a join, a reconnect or a thread stream works on any process; the sweeper deletes those of a
thread's ended runs once the thread has been unchanged longer than AEGRA_RUN_EVENTS_RETENTION_SECONDS. It walks
the threads by `updated_at`, from where its previous sweep stopped. Thread searches sorted by `updated_at` (as
LangGraph Studio's) no longer sort every thread either.

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
    op.create_index("ix_threads_updated_at", "threads", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_threads_updated_at", table_name="threads")
