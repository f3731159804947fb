"""The SQL engine for our own tables, one per server process, for SQLite or Postgres.

SQLite allows one writer at a time. Writes go through a dedicated single-connection engine that starts every
transaction with BEGIN IMMEDIATE, so a read-then-write transaction never fails on a stale snapshot, and an
asyncio lock queues our writers instead of letting them spin on the busy timeout. Reads use a separate pool
and run beside the writer thanks to WAL. On Postgres one pooled engine does both.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from aegra_server.serde import dumps_str, loads
from aegra_server.storage.urls import DatabaseUrl

SQLITE_BUSY_TIMEOUT_MS = 10_000


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _sqlite_engine(url: DatabaseUrl, *, writer: bool, shared: bool) -> AsyncEngine:
    kwargs: dict = {"json_serializer": dumps_str, "json_deserializer": loads}
    if shared:
        kwargs["poolclass"] = StaticPool
    elif writer:
        kwargs.update(pool_size=1, max_overflow=0)
    engine = create_async_engine(url.sqlalchemy_async, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Take over BEGIN from the driver so we can choose IMMEDIATE (the SQLAlchemy-documented recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer or shared else "BEGIN")

    return engine


class Database:
    """Engines plus the write discipline for one database URL."""

    def __init__(self, url: DatabaseUrl) -> None:
        self.url = url
        self.dialect = url.dialect
        if url.dialect == "sqlite":
            in_memory = url.sqlite_path == ":memory:"
            self._writer = _sqlite_engine(url, writer=True, shared=in_memory)
            self._reader = self._writer if in_memory else _sqlite_engine(url, writer=False, shared=False)
        else:
            self._writer = self._reader = create_async_engine(
                url.sqlalchemy_async,
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=True,
                json_serializer=dumps_str,
                json_deserializer=loads,
            )
        # Postgres has row locks; only SQLite needs our writers queued.
        self._write_lock = contextlib.nullcontext() if url.dialect == "postgresql" else asyncio.Lock()

    @property
    def engine(self) -> AsyncEngine:
        return self._writer

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        async with self._write_lock, self._writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._reader.connect() as conn:
            yield conn

    async def close(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()
