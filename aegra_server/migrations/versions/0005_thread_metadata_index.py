"""An index for thread metadata filters on Postgres.

Thread searches and counts filter on metadata by containment (`@>`), and an authorization handler's filter adds
one to every thread request of an authenticated deployment: without an index each of them reads every thread.
A GIN index with the jsonb_path_ops class serves `@>` alone, smaller than the default class. SQLite stores JSON
as text, which no index serves; nothing changes there.

Built with a plain CREATE INDEX, inside the migration's transaction: it blocks writes to `threads` while it
builds (about a second per few hundred thousand threads), which an upgrade run before the servers start, as
`aegra migrate` and the servers themselves do, does not notice.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.create_index(
            "ix_threads_metadata", "threads", ["metadata"],
            postgresql_using="gin", postgresql_ops={"metadata": "jsonb_path_ops"},
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.drop_index("ix_threads_metadata", table_name="threads")
