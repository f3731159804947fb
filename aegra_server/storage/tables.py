"""Our own tables, defined once in SQLAlchemy Core and used by both dialects.

Checkpoints and the store live in LangGraph's own tables (official savers); these hold what the protocol adds
on top: assistants and their versions, threads with their latest values, and runs. JSON columns are JSONB on
Postgres (containment queries, GIN-indexable) and JSON text on SQLite.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

Json = JSON().with_variant(JSONB(), "postgresql")
Timestamp = DateTime(timezone=True)


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
    Index("ix_threads_created_at", "created_at"),
    Index("ix_threads_status", "status"),
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
    Index("ix_runs_thread_created", "thread_id", "created_at"),
    Index("ix_runs_status", "status"),
)
