"""Driver connections for LangGraph's own persistence (checkpointer, store), closed with the server."""

from __future__ import annotations

from contextlib import AsyncExitStack

import aiosqlite

from aegra_server.storage.urls import DatabaseUrl


async def sqlite_connection(url: DatabaseUrl, stack: AsyncExitStack) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(url.sqlite_path, isolation_level=None)
    await conn.execute("PRAGMA busy_timeout=10000")
    await conn.execute("PRAGMA synchronous=NORMAL")
    stack.push_async_callback(conn.close)
    return conn


async def postgres_pool(url: DatabaseUrl, stack: AsyncExitStack):
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(
        url.conninfo,
        min_size=2,
        max_size=20,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    await pool.open()
    stack.push_async_callback(pool.close)
    return pool
