"""Our own tables' database, one per server process, for SQLite or Postgres.

Repository code is plain synchronous SQLAlchemy Core: a function taking a Connection. `read(fn)` and `write(fn)`
run one such function in one transaction, with one hand-off off the event loop per call:

- SQLite: a single writer thread (SQLite allows one writer; transactions start with BEGIN IMMEDIATE so a
  read-then-write never fails on a stale snapshot) and a small pool of reader threads, which WAL lets run beside
  the writer. This is much faster than an async driver, which hops threads once per statement.
  In the server the writer thread is the checkpointer's (`writes_on`): LangGraph's AsyncSqliteSaver writes on
  its own connection and thread, and two threads writing one SQLite file collide on its write lock, where the
  loser sleeps in SQLite's busy handler (a millisecond and up). Queued on one thread, writes never collide.
- Postgres: the async psycopg engine runs the same function through `run_sync`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import StaticPool

from aegra_server.serde import dumps_str, loads
from aegra_server.storage.liveness import ping_when_needed
from aegra_server.storage.urls import DatabaseUrl

T = TypeVar("T")
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_READERS = 4


def utcnow() -> datetime:
    return datetime.now(UTC)


async def _finished_if_cut_short(work: Awaitable[T]) -> T:
    """`work`'s result; when the caller is cancelled meanwhile, `work` still runs to its end, unseen.

    For Postgres reads: a read has nothing to undo, and cancelling one mid-query costs psycopg a cancel request to
    the server, whose wait anyio's cancellation (delivered again at every await, as when a client leaves a
    streaming response) interrupts, and psycopg then closes the connection with a warning. (SQLite's reads run on
    threads, which a cancel never stops.)"""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_leave_unseen)
        raise


def _leave_unseen(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so that asyncio does not log a failure nobody waits for


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _sqlite_engine(url: DatabaseUrl, *, shared: bool, size: int) -> Engine:
    kwargs: dict[str, Any] = {"json_serializer": dumps_str, "json_deserializer": loads}
    if shared:
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        kwargs.update(pool_size=size, max_overflow=0, connect_args={"check_same_thread": False})
    engine = create_engine(url.sqlalchemy_sync, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Take BEGIN over from the driver, so that _HeldConnections can choose IMMEDIATE.
        dbapi_connection.isolation_level = None
        for pragma in (f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}", "foreign_keys=ON", "synchronous=NORMAL"):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    return engine


class _HeldConnections:
    """SQLite connections kept open by the threads that use them: a pool checkout per transaction (and the
    rollback the pool issues on every return) costs as much as a small transaction itself.

    The writer's connection is one, whichever thread writes (writes are queued on one thread at a time); each
    reader thread holds its own."""

    def __init__(self) -> None:
        self._held: dict[tuple[int, int], tuple[Connection, Any]] = {}

    def run(self, engine: Engine, per_thread: bool, fn: Callable[..., T], args: tuple) -> T:
        key = (id(engine), threading.get_ident() if per_thread else 0)
        conn, driver = self._held.get(key, (None, None))
        if conn is None or conn.closed or conn.invalidated:
            conn = engine.connect()
            driver = conn.connection.dbapi_connection
            self._held[key] = conn, driver
        with conn.begin():
            # BEGIN straight to the driver (in autocommit mode, see _sqlite_engine) rather than from a "begin"
            # event listener: any such listener puts every statement on SQLAlchemy's slower path that looks
            # for execution events. The writer takes the write lock at once (IMMEDIATE), so a read-then-write
            # never fails on a stale snapshot; readers begin deferred and read one snapshot.
            driver.execute("BEGIN" if per_thread else "BEGIN IMMEDIATE")
            return fn(conn, *args)

    def close(self) -> None:
        for conn, _ in self._held.values():
            conn.close()
        self._held.clear()


class Database:
    def __init__(self, url: DatabaseUrl, postgres_connections: int = 20) -> None:
        """`postgres_connections`: the most the pool of our tables opens (storage.connections.PostgresConnections)."""
        self.url = url
        self.dialect = url.dialect
        self._write_queue: aiosqlite.Connection | None = None
        self._connections = _HeldConnections()
        if url.dialect == "sqlite":
            shared = url.is_memory  # a private in-memory database lives on exactly one connection
            self._writer = _sqlite_engine(url, shared=shared, size=1)
            self._reader = self._writer if shared else _sqlite_engine(url, shared=False, size=SQLITE_READERS)
            self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="aegra-db-write")
            self._read_threads = (
                self._write_thread if shared else ThreadPoolExecutor(SQLITE_READERS, thread_name_prefix="aegra-db-read")
            )
            self._async_engine = None
        else:
            self._async_engine = create_async_engine(
                url.sqlalchemy_async,
                pool_size=postgres_connections,
                max_overflow=0,
                json_serializer=dumps_str,
                json_deserializer=loads,
            )
            ping_when_needed(self._async_engine.sync_engine)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._async_engine is not None:
            return await _finished_if_cut_short(self._run_async(fn, args))
        if self._reader is self._writer:  # one in-memory database: its one connection is the writer's
            return await self.write(fn, *args)
        return await self._run_in(self._read_threads, self._reader, True, fn, args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        if self._async_engine is not None:
            return await self._run_async(fn, args)
        if self._write_queue is not None:
            return await self._write_queue._execute(self._connections.run, self._writer, False, fn, args)
        return await self._run_in(self._write_thread, self._writer, False, fn, args)

    def writes_on(self, connection: aiosqlite.Connection) -> None:
        """Run SQLite writes (and, for an in-memory database, reads) on the thread of `connection`, the
        checkpointer's: see the module's docstring. aiosqlite has no public call for "run this function on
        your thread"; `_execute` is that, unchanged since aiosqlite 0.17. Should a release drop it, writes
        stay on our own writer thread: slower under load, still correct."""
        if self.dialect == "sqlite" and callable(getattr(connection, "_execute", None)):
            self._write_queue = connection

    async def _run_async(self, fn: Callable[..., T], args: tuple) -> T:
        async with self._async_engine.begin() as conn:
            return await conn.run_sync(fn, *args)

    async def _run_in(self, threads: ThreadPoolExecutor, engine: Engine, per_thread: bool, fn: Callable[..., T], args: tuple) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(threads, self._connections.run, engine, per_thread, fn, args)

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
        self._connections.close()
        for engine in {self._writer, self._reader}:
            engine.dispose()


__all__ = ["Connection", "Database", "as_utc", "utcnow"]
