"""Driver connections for LangGraph's own persistence (checkpointer, store), closed with the server."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from aegra_server.storage import write_fence
from aegra_server.storage.liveness import PoolCheck
from aegra_server.storage.sqlite_sharing import FileLock
from aegra_server.storage.urls import DatabaseUrl

log = logging.getLogger("aegra.storage")


def connection_lost(exc: BaseException) -> bool:
    """Whether an error says the database went away (a restart, a failover, a dropped connection) rather than
    anything about the work: the work can be done again once the database answers. Psycopg raises these as
    OperationalError (a pool that cannot connect, its PoolTimeout subclass); SQLAlchemy's errors carry the
    driver's as their cause. SQLite has no server to lose."""
    import psycopg

    while exc is not None:
        if isinstance(exc, psycopg.OperationalError):
            return True
        exc = exc.__cause__
    return False


def log_failure(logger: logging.Logger, level: int, message: str, exc: BaseException) -> None:
    """Log a failed background step: one warning line when the database is unreachable (an outage says nothing
    about the code, and the step repeats every few seconds until it ends), the whole traceback otherwise."""
    if connection_lost(exc):
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        logger.warning("%s: the database is unreachable (%s)", message, first_line)
    else:
        logger.log(level, message, exc_info=exc)


# Calls on the aiosqlite thread that never write (a cursor's bookkeeping and fetches; `commit` in autocommit
# mode): more than half of the checkpointer's calls, and they need no turn; nor does a SELECT (WAL readers
# never wait for the writer).
_TOUCH_NO_FILE = frozenset({"cursor", "close", "commit", "fetchone", "fetchmany", "fetchall"})


def reads_only(fn):
    """Marks a function sent whole to the aiosqlite thread (the checkpointer's one-trip operations) as one that
    never writes, so it needs no turn."""
    fn.reads_only = True
    return fn


def _may_write(fn, args: tuple) -> bool:
    if getattr(fn, "reads_only", False):
        return False
    name = getattr(fn, "__name__", None)
    if name in _TOUCH_NO_FILE:
        return False
    sql = args[0] if args and isinstance(args[0], str) else ""
    return not (name in ("execute", "_execute_fetchall") and sql.lstrip()[:6].upper() == "SELECT")


class _TakesTurns(aiosqlite.Connection):
    """An aiosqlite connection whose every call that may write holds a lock shared by the processes writing
    one SQLite file.

    Without it, a process that finds the file locked by another sleeps in SQLite's busy handler (1 ms, then
    2, 5, 10 ms...) while the writes queued behind it, every checkpoint of that process included, wait too:
    two workers then serve fewer runs than one. Waiting on the flock instead costs no sleep. Only for
    connections in autocommit mode whose transactions are single calls (the checkpointer's): a transaction
    spread over several calls would hold SQLite's lock between them while another process held the flock.
    `_execute` is the aiosqlite method every call goes through (see Database.writes_on); were it renamed,
    writes would go back to SQLite's busy handler: slower, still correct.
    """

    def __init__(self, path: str, lock: FileLock) -> None:
        super().__init__(lambda: sqlite3.connect(path, isolation_level=None), iter_chunk_size=64)
        self._lock = lock

    async def _execute(self, fn, *args, **kwargs):
        if not _may_write(fn, args):
            return await super()._execute(fn, *args, **kwargs)
        return await super()._execute(self._lock.run, fn, *args, **kwargs)


async def sqlite_connection(
    url: DatabaseUrl, stack: AsyncExitStack, *, turns_with: Path | None = None
) -> aiosqlite.Connection:
    """A connection for LangGraph's persistence; `turns_with` names the lock file of processes sharing the
    database (`aegra serve --workers`), for a connection that writes in single-call transactions."""
    if turns_with is None:
        conn = await aiosqlite.connect(url.sqlite_path, isolation_level=None)
    else:
        lock = FileLock(turns_with)
        stack.callback(lock.close)
        conn = await _TakesTurns(url.sqlite_path, lock)
    await conn.execute("PRAGMA busy_timeout=10000")
    await conn.execute("PRAGMA synchronous=NORMAL")
    stack.push_async_callback(conn.close)
    return conn


# Connections kept for others on a Postgres server when a process takes its share by default: psql sessions, a
# migration, a backup.
POSTGRES_HEADROOM = 5
# The most a process takes by default (what its pools together could open before they were sized), and the least
# it runs on.
POSTGRES_CONNECTIONS_MOST = 62
POSTGRES_CONNECTIONS_LEAST = 6


@dataclass(frozen=True)
class PostgresConnections:
    """How many connections each Postgres pool of a server process may open: with the signal bus's two
    (runs.bus.PostgresBus: one listening, one sending), that many in all. Requests wait for a pool's connection
    rather than the server opening more than Postgres allows (beyond max_connections it refuses them all)."""

    tables: int
    checkpointer: int
    store: int
    BUS = 2

    @classmethod
    def within(cls, total: int) -> PostgresConnections:
        pools = total - cls.BUS
        # Our tables and the checkpointer are on every run's path; the store serves only graphs that use it.
        tables = checkpointer = max(1, pools * 2 // 5)
        return cls(tables, checkpointer, max(1, pools - tables - checkpointer))


def per_process_connections(max_connections: int, reserved: int, workers: int) -> int:
    """A process's share of a Postgres server's connections when AEGRA_POSTGRES_CONNECTIONS does not say: what the
    server allows beyond its superuser-reserved ones and some headroom, split among the workers (other servers on
    the same Postgres are not known: set the variable for them)."""
    share = (max_connections - reserved - POSTGRES_HEADROOM) // workers
    return max(POSTGRES_CONNECTIONS_LEAST, min(POSTGRES_CONNECTIONS_MOST, share))


async def postgres_connections(url: DatabaseUrl, setting: int | None, workers: int) -> PostgresConnections:
    """The pools' sizes for this process: AEGRA_POSTGRES_CONNECTIONS in all, else its share of the server's (on
    SQLite, which has no such pools, the most)."""
    if url.dialect != "postgresql":
        return PostgresConnections.within(POSTGRES_CONNECTIONS_MOST)
    if setting is None:
        async with _connected(url) as conn:
            cursor = await conn.execute(
                "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int"
            )
            max_connections, reserved = await cursor.fetchone()
        setting = per_process_connections(max_connections, reserved, workers)
        if setting * workers > max_connections - reserved:
            log.warning(
                "Postgres allows %d connections; %d worker(s) need %d each at least: raise its max_connections",
                max_connections - reserved, workers, setting,
            )
    return PostgresConnections.within(setting)


async def postgres_pool(url: DatabaseUrl, stack: AsyncExitStack, *, size: int, fenced: bool = False):
    """A pool of at most `size` connections. `fenced`: for the checkpointer (storage.write_fence). Not for the
    store, whose operations one shared task carries out for every caller, in its own context."""
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    class FencedPool(AsyncConnectionPool):
        """Hands a run's graph a connection only while its process holds the run (storage.write_fence): asked
        once the connection is in hand, since a write of a process cut off from the database waits here."""

        async def getconn(self, timeout: float | None = None):
            conn = await super().getconn(timeout)
            try:
                await write_fence.check()
            except BaseException:  # refused, or cancelled while asking
                await self.putconn(conn)
                raise
            return conn

    liveness = PoolCheck()
    pool = (FencedPool if fenced else AsyncConnectionPool)(
        url.conninfo,
        min_size=min(2, size),
        max_size=size,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        check=liveness.check,
        reset=liveness.returned,
    )
    await pool.open()
    stack.push_async_callback(pool.close)
    return pool


@asynccontextmanager
async def _connected(url: DatabaseUrl):
    """One connection to Postgres while the server starts; one that fails says why in the user's terms."""
    import psycopg

    from aegra_server.migrations import cannot_connect

    try:
        conn = await psycopg.AsyncConnection.connect(url.conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        raise cannot_connect(url, exc) from exc
    async with conn:
        yield conn


# Key of the Postgres advisory lock a server holds while it sets up the database ("aegra" in ASCII, then 1).
SETUP_LOCK_KEY = 0x6165677261_01


@asynccontextmanager
async def postgres_setup_lock(url: DatabaseUrl) -> AsyncIterator[None]:
    """Hold the database's setup lock for the block, waiting for it if another process holds it; released with
    its connection, also if this process dies.

    Waiting is a try every 50 ms, not pg_advisory_lock: a statement blocked in that holds a snapshot, and
    LangGraph's checkpointer migrations build an index CONCURRENTLY, which waits for every such snapshot to end:
    the holder would wait for the waiters (a deadlock Postgres does not report)."""
    async with _connected(url) as conn:
        while not (await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (SETUP_LOCK_KEY,))).fetchone())[0]:
            await asyncio.sleep(0.05)
        yield
