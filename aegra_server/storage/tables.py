"""Our own tables, defined once in SQLAlchemy Core and used by both dialects.

Checkpoints and the store live in LangGraph's own tables (official savers); these hold what the protocol adds
on top: assistants and their versions, threads with their latest values, runs, and crons. JSON columns are JSONB on
Postgres (containment queries, GIN-indexable) and JSON text on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.schema import SchemaItem

metadata = MetaData()

Json = JSON().with_variant(JSONB(), "postgresql")
Timestamp = DateTime(timezone=True)


def made_on(item: SchemaItem, dialect: str) -> bool:
    """Whether the schema has `item` on `dialect`: an item marked `.ddl_if(dialect=...)` exists there only."""
    condition = getattr(item, "_ddl_if", None)  # what ddl_if() sets; SQLAlchemy has no public reader for it
    return condition is None or condition.dialect in (None, dialect)


def compared_on(dialect: str) -> Callable[..., bool]:
    """Alembic's `include_object` for comparing a `dialect` database with this module (autogenerate, `alembic
    check`): LangGraph's tables in the same database (checkpoints, store) are not ours, and what this module makes
    on other dialects only is not expected here."""

    def include(item: Any, _name: str | None, kind: str, reflected: bool, _compare_to: Any) -> bool:
        table = item if kind == "table" else getattr(item, "table", None)
        if table is not None and table.name not in metadata.tables:
            return False
        return reflected or made_on(item, dialect)

    return include


def _id(name: str, *args, **kw) -> Column:
    return Column(name, String(36), *args, **kw)


assistants = Table(
    "assistants",
    metadata,
    _id("assistant_id", primary_key=True),
    Column("graph_id", String(255), nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("config", Json, nullable=False),
    Column("context", Json, nullable=False),
    Column("metadata", Json, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Index("ix_assistants_graph_id", "graph_id"),
    Index("ix_assistants_created_at", "created_at"),
)

assistant_versions = Table(
    "assistant_versions",
    metadata,
    _id("assistant_id", ForeignKey("assistants.assistant_id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("graph_id", String(255), nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("config", Json, nullable=False),
    Column("context", Json, nullable=False),
    Column("metadata", Json, nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

threads = Table(
    "threads",
    metadata,
    _id("thread_id", primary_key=True),
    Column("status", String(16), nullable=False),
    Column("metadata", Json, nullable=False),
    Column("config", Json, nullable=False),
    # The latest state values and pending interrupts, copied in when a run ends or the state is edited, so
    # thread reads and `values` searches need no checkpoint load.
    Column("values", Json),
    Column("interrupts", Json, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("state_updated_at", Timestamp),
    # Time to live (revision 0003): {"ttl": minutes, "strategy": "delete"}; the sweeper removes the thread
    # once `expires_at` has passed.
    Column("ttl", Json),
    Column("expires_at", Timestamp),
    # The error of the last run that ended on the thread (revision 0004), as that run's `error`; NULL once a run
    # ends without one or the state is edited, as langgraph-api clears it.
    Column("error", Json),
    Index("ix_threads_created_at", "created_at"),
    Index("ix_threads_status", "status"),
    Index("ix_threads_expires_at", "expires_at"),
    # Threads in the order they last changed (revision 0006): searches sorted by it, and the sweeper, which forgets
    # the stored run events of threads idle longer than the retention.
    Index("ix_threads_updated_at", "updated_at"),
    # Metadata containment (`@>`: searches, counts, authorization filters) on Postgres (revision 0005);
    # jsonb_path_ops indexes exactly that operator, smaller than the default GIN class. SQLite has no index for it.
    Index(
        "ix_threads_metadata", "metadata", postgresql_using="gin", postgresql_ops={"metadata": "jsonb_path_ops"}
    ).ddl_if(dialect="postgresql"),
)

runs = Table(
    "runs",
    metadata,
    _id("run_id", primary_key=True),
    _id("thread_id", ForeignKey("threads.thread_id", ondelete="CASCADE"), nullable=False),
    _id("assistant_id", nullable=False),
    Column("status", String(16), nullable=False),
    Column("metadata", Json, nullable=False),
    # Everything the run was created with (input, command, config, context, stream modes, ...).
    Column("kwargs", Json, nullable=False),
    Column("multitask_strategy", String(16), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    # Work distribution (revision 0003): a run is claimed by one server process (`owner`) for as long as it
    # renews `lease_until`; a run whose lease ran out is claimed again and resumed from its last checkpoint.
    Column("owner", String(64)),
    Column("lease_until", Timestamp),
    Column("available_at", Timestamp, nullable=False),  # created_at + after_seconds
    Column("attempt", Integer, nullable=False),
    # interrupt | rollback | delete (an interrupt before its thread is deleted), asked for while another process
    # runs it
    Column("cancel_action", String(16)),
    Column("error", Json),  # {"error": type, "message": ...} of a failed run, for wait/join anywhere
    Index("ix_runs_thread_created", "thread_id", "created_at"),
    Index("ix_runs_status", "status"),
    Index("ix_runs_claimable", "status", "available_at"),
)

# Events of runs, for readers on other server processes (Postgres, SQLite workers; one process reads from memory),
# kept until the thread has been idle for a while (sweeper).
run_events = Table(
    "run_events",
    metadata,
    _id("run_id", ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("event", Text, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

crons = Table(
    "crons",
    metadata,
    _id("cron_id", primary_key=True),
    # Deleting the assistant or the thread deletes its crons: a cron whose target is gone could never fire.
    _id("assistant_id", ForeignKey("assistants.assistant_id", ondelete="CASCADE"), nullable=False),
    _id("thread_id", ForeignKey("threads.thread_id", ondelete="CASCADE")),  # NULL for a stateless cron
    Column("user_id", Text),
    Column("schedule", Text, nullable=False),
    Column("timezone", Text),  # IANA name; NULL means UTC
    # The run each firing creates (input, config, context, stream modes, ...), as the client sent it.
    Column("payload", Json, nullable=False),
    Column("metadata", Json, nullable=False),
    Column("on_run_completed", String(16)),  # stateless crons only: delete | keep
    Column("enabled", Boolean, nullable=False),
    Column("end_time", Timestamp),
    Column("next_run_date", Timestamp),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Index("ix_crons_next_run_date", "next_run_date"),
    Index("ix_crons_assistant_id", "assistant_id"),
    Index("ix_crons_thread_id", "thread_id"),
    Index("ix_crons_created_at", "created_at"),
)
