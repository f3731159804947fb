"""How our tables' database keeps its connections: Postgres ones lost while idle are replaced before use,
SQLite writes share the checkpointer's thread, and workers on one SQLite file write it in turn."""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import AsyncExitStack

import aiosqlite
import anyio
import psycopg
import pytest
from sqlalchemy import text

from aegra_server.runs.bus import PostgresBus
from aegra_server.storage import liveness
from aegra_server.storage.connections import postgres_pool, sqlite_connection
from aegra_server.storage.database import Database
from aegra_server.storage.sqlite_sharing import holding
from aegra_server.storage.urls import parse_database_url


def terminate(postgres_url: str, pid: int) -> None:
    """Close a connection from the server's side, as a restart does, and wait until its backend is gone."""
    with psycopg.connect(parse_database_url(postgres_url).conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            time.sleep(0.01)


@pytest.mark.postgres
async def test_a_postgres_connection_the_server_closed_is_replaced_before_use(postgres_url):
    """Right away, not only once it counts as idle: the server's goodbye is waiting to be read on it."""
    db = Database(parse_database_url(postgres_url))
    try:
        pid = await db.write(lambda conn: conn.execute(text("SELECT pg_backend_pid()")).scalar())
        terminate(postgres_url, pid)
        again = await db.write(lambda conn: conn.execute(text("SELECT pg_backend_pid()")).scalar())
        assert again != pid
    finally:
        await db.close()


@pytest.mark.postgres
async def test_the_checkpointers_pool_replaces_connections_the_server_closed(postgres_url):
    async with AsyncExitStack() as stack:
        pool = await postgres_pool(parse_database_url(postgres_url), stack, size=4)
        async with pool.connection() as conn:
            pids = [(await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone())["pid"]]
        terminate(postgres_url, pids[0])
        for _ in range(3):  # whichever pooled connection comes next works
            async with pool.connection() as conn:
                pids.append((await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone())["pid"])
        assert pids[0] not in pids[1:]


@pytest.mark.postgres
async def test_a_busy_postgres_connection_is_not_pinged(postgres_url, monkeypatch):
    """Within the idle window a checkout costs no round trip; past it, one ping."""
    db = Database(parse_database_url(postgres_url))
    dialect = db._async_engine.sync_engine.dialect
    pings: list[object] = []
    ping = dialect.do_ping
    monkeypatch.setattr(dialect, "do_ping", lambda dbapi_connection: pings.append(dbapi_connection) or ping(dbapi_connection))
    try:
        await db.write(lambda conn: conn.execute(text("SELECT 1")))  # a new connection: checked once
        await db.write(lambda conn: conn.execute(text("SELECT 1")))
        assert len(pings) == 1
        monkeypatch.setattr(liveness, "PING_AFTER_IDLE_SECONDS", 0.0)
        await db.write(lambda conn: conn.execute(text("SELECT 1")))
        assert len(pings) == 2
    finally:
        await db.close()


async def test_sqlite_writes_share_the_checkpointers_thread(tmp_path):
    """One thread writes the SQLite file (ours and the checkpointer's statements), so they never wait on each
    other's write lock; reads stay on their own threads."""
    url = parse_database_url(f"sqlite:///{tmp_path / 'one-writer.db'}")
    db = Database(url)
    checkpointer_connection = await aiosqlite.connect(url.sqlite_path)
    try:
        db.writes_on(checkpointer_connection)
        checkpointer_thread = await checkpointer_connection._execute(threading.get_ident)
        assert await db.write(lambda conn: threading.get_ident()) == checkpointer_thread
        assert await db.read(lambda conn: threading.get_ident()) != checkpointer_thread
    finally:
        await checkpointer_connection.close()
        await db.close()


async def test_a_worker_writes_the_shared_file_only_in_its_turn(tmp_path):
    """`aegra serve --workers`: the checkpointer's connection waits for the lock file another worker holds
    before it writes (rather than sleeping in SQLite's busy handler); reads need no turn."""
    url = parse_database_url(f"sqlite:///{tmp_path / 'shared.db'}")
    lock_file = tmp_path / "bus" / "writes.lock"
    async with AsyncExitStack() as stack:
        conn = await sqlite_connection(url, stack, turns_with=lock_file)
        await conn.execute("CREATE TABLE t (v INTEGER)")
        async with holding(lock_file):  # another worker's turn
            assert await conn.execute_fetchall("SELECT count(*) FROM t") == [(0,)]
            write = asyncio.ensure_future(conn.execute("INSERT INTO t VALUES (1)"))
            await asyncio.sleep(0.3)
            assert not write.done()
        await asyncio.wait_for(write, 5)
        assert await conn.execute_fetchall("SELECT count(*) FROM t") == [(1,)]


@pytest.mark.postgres
async def test_the_postgres_bus_comes_back_after_its_connections_drop(postgres_url):
    """A database restart drops both bus connections: signals must neither raise (they follow committed writes)
    nor stop for good (once the sender was lost, every signal failed until the server restarted)."""
    conninfo = parse_database_url(postgres_url).conninfo
    bus = PostgresBus(conninfo)
    await bus.start()
    received: list[str] = []
    bus.listen("aegra_wake", received.append)

    async def delivered(payload: str) -> None:
        for _ in range(100):
            await bus.notify("aegra_wake", payload)  # sent again until the listener is back too
            await asyncio.sleep(0.1)
            if payload in received:
                return
        raise AssertionError(f"{payload!r} never arrived: {received}")

    try:
        await delivered("before")
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (bus._sender.info.backend_pid,))
        await delivered("sender dropped")
        with psycopg.connect(conninfo, autocommit=True) as admin:  # both, as a restart would
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        await delivered("both dropped")
    finally:
        await bus.stop()


@pytest.mark.postgres
async def test_a_read_cut_short_by_its_caller_finishes_on_its_connection(postgres_url, caplog):
    """A client that disconnects from a stream cancels the request's task through anyio, whose cancellation is
    delivered again at every await: psycopg, interrupted while asking the server to cancel the query, closed
    the connection with a warning. A read has nothing to undo: it finishes, its caller gone, and its connection
    goes back to the pool."""
    db = Database(parse_database_url(postgres_url))
    try:
        pid = await db.read(lambda conn: conn.execute(text("SELECT pg_backend_pid()")).scalar())
        finished = asyncio.Event()

        def slow_read(conn):
            conn.execute(text("SELECT pg_sleep(0.3)"))
            finished.set()

        with anyio.move_on_after(0.05) as scope:
            await db.read(slow_read)
        assert scope.cancelled_caught
        await asyncio.wait_for(finished.wait(), 5)
        for _ in range(500):  # until the read's transaction has ended and its connection is back
            if not db.pool_usage()["tables"][0]:
                break
            await asyncio.sleep(0.01)
        assert await db.read(lambda conn: conn.execute(text("SELECT pg_backend_pid()")).scalar()) == pid
        assert not [r for r in caplog.records if r.name == "psycopg"], caplog.text
    finally:
        await db.close()
