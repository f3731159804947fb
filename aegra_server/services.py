"""Everything one server process holds while it runs, opened in the app's lifespan and closed after it."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from aegra_server import migrations
from aegra_server.config import AegraConfig, load_config
from aegra_server.graphs import GraphRegistry, default_assistant_id
from aegra_server.runs.manager import RunManager
from aegra_server.settings import Settings
from aegra_server.storage.database import Database
from aegra_server.storage.repositories import Repositories
from aegra_server.storage.tables import metadata
from aegra_server.storage.urls import DatabaseUrl, parse_database_url


@dataclass
class Services:
    settings: Settings
    config: AegraConfig
    registry: GraphRegistry
    repos: Repositories
    checkpointer: Any
    store: Any
    runs: RunManager


async def _open_langgraph_persistence(url: DatabaseUrl, stack: AsyncExitStack) -> tuple[Any, Any]:
    """LangGraph's official checkpointer and store on the same database as our tables."""
    if url.dialect == "sqlite":
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
        from langgraph.store.sqlite.aio import AsyncSqliteStore

        async def connect() -> aiosqlite.Connection:
            conn = await aiosqlite.connect(url.sqlite_path, isolation_level=None)
            await conn.execute("PRAGMA busy_timeout=10000")
            await conn.execute("PRAGMA synchronous=NORMAL")
            stack.push_async_callback(conn.close)
            return conn

        checkpointer = AsyncSqliteSaver(await connect())
        store = AsyncSqliteStore(await connect())
    else:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from langgraph.store.postgres.aio import AsyncPostgresStore
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        pool = AsyncConnectionPool(
            url.conninfo, min_size=2, max_size=20, open=False,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        )
        await pool.open()
        stack.push_async_callback(pool.close)
        checkpointer = AsyncPostgresSaver(pool)
        store = AsyncPostgresStore(pool)
    await checkpointer.setup()
    await store.setup()
    return checkpointer, store


async def open_services(settings: Settings, stack: AsyncExitStack) -> Services:
    config = load_config(settings.config_path)
    registry = await asyncio.to_thread(GraphRegistry.load, config)
    stack.push_async_callback(registry.aclose)
    url = parse_database_url(settings.resolved_database_url())
    db = Database(url)
    stack.push_async_callback(db.close)
    if url.is_memory:
        # A private in-memory database exists only on our engine's connection, so it gets the schema there.
        await db.write(metadata.create_all)
    else:
        await asyncio.to_thread(migrations.upgrade, settings.resolved_database_url())
    repos = Repositories.build(db)
    checkpointer, store = await _open_langgraph_persistence(url, stack)
    await repos.assistants.ensure_defaults(
        {g: default_assistant_id(g) for g in registry.ids}, {g: registry.description(g) for g in registry.ids}
    )
    runs = RunManager(repos, registry, checkpointer, store, settings)
    stack.push_async_callback(runs.shutdown)
    await runs.recover()
    return Services(settings, config, registry, repos, checkpointer, store, runs)
