"""Our own tables' database, one per server process, for SQLite or Postgres.

Repository code is plain synchronous SQLAlchemy Core: a function taking a Connection. `read(fn)` and `write(fn)`
run one such function in one transaction, with one hand-off off the event loop per call:

- SQLite: a single writer thread (SQLite allows one writer; transactions start with BEGIN IMMEDIATE so a
  read-then-write never fails on a stale snapshot) and a small pool of reader threads, which WAL lets run beside
  the writer. This is much faster than an async driver, which hops threads once per statement.
- Postgres: the async psycopg engine runs the same function through `run_sync`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import StaticPool

from aegra_server.serde import dumps_str, loads
from aegra_server.storage.urls import DatabaseUrl

T = TypeVar("T")
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_READERS = 4


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _sqlite_engine(url: DatabaseUrl, *, immediate: bool, shared: bool, size: int) -> Engine:
    kwargs: dict[str, Any] = {"json_serializer": dumps_str, "json_deserializer": loads}
    if shared:
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        kwargs.update(pool_size=size, max_overflow=0, connect_args={"check_same_thread": False})
    engine = create_engine(url.sqlalchemy_sync, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Take BEGIN over from the driver so we can choose IMMEDIATE (SQLAlchemy's documented recipe).
        dbapi_connection.isolation_level = None
        for pragma in (f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}", "foreign_keys=ON", "synchronous=NORMAL"):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        # Straight to the driver: this runs once per transaction and needs none of SQLAlchemy's machinery.
        connection.connection.dbapi_connection.execute(begin)

    return engine


class Database:
    def __init__(self, url: DatabaseUrl) -> None:
        self.url = url
        self.dialect = url.dialect
        if url.dialect == "sqlite":
            shared = url.is_memory  # a private in-memory database lives on exactly one connection
            self._writer = _sqlite_engine(url, immediate=True, shared=shared, size=1)
            self._reader = self._writer if shared else _sqlite_engine(
                url, immediate=False, shared=False, size=SQLITE_READERS
            )
            self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="aegra-db-write")
            self._read_threads = (
                self._write_thread if shared else ThreadPoolExecutor(SQLITE_READERS, thread_name_prefix="aegra-db-read")
            )
            self._async_engine = None
        else:
            self._async_engine = create_async_engine(
                url.sqlalchemy_async,
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=True,
                json_serializer=dumps_str,
                json_deserializer=loads,
            )

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._async_engine is not None:
            return await self._run_async(fn, args)
        return await self._run_in(self._read_threads, self._reader, fn, args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        if self._async_engine is not None:
            return await self._run_async(fn, args)
        return await self._run_in(self._write_thread, self._writer, fn, args)

    async def _run_async(self, fn: Callable[..., T], args: tuple) -> T:
        async with self._async_engine.begin() as conn:
            return await conn.run_sync(fn, *args)

    @staticmethod
    async def _run_in(threads: ThreadPoolExecutor, engine: Engine, fn: Callable[..., T], args: tuple) -> T:
        def call() -> T:
            with engine.begin() as conn:
                return fn(conn, *args)

        return await asyncio.get_running_loop().run_in_executor(threads, call)

    def pool_usage(self) -> dict[str, tuple[int, int]]:
        """(connections checked out, pool size) per connection pool of our tables, for metrics."""
        if self._async_engine is not None:
            engines = {"tables": self._async_engine.sync_engine}
        else:
            engines = {"tables_writer": self._writer, "tables_reader": self._reader}
        usage: dict[str, tuple[int, int]] = {}
        for name, engine in engines.items():
            pool = engine.pool
            if hasattr(pool, "checkedout") and hasattr(pool, "size"):  # a StaticPool (in-memory SQLite) has neither
                usage[name] = (pool.checkedout(), pool.size())
        return usage

    async def close(self) -> None:
        if self._async_engine is not None:
            await self._async_engine.dispose()
            return
        for pool in {self._write_thread, self._read_threads}:
            pool.shutdown(wait=True)
        for engine in {self._writer, self._reader}:
            engine.dispose()


__all__ = ["Connection", "Database", "as_utc", "utcnow"]
