"""The long-term memory store (LangGraph's BaseStore) behind /store and graphs' `store` argument."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from aegra_server.config import AegraConfig
from aegra_server.storage.connections import postgres_pool, sqlite_connection
from aegra_server.storage.urls import DatabaseUrl


async def open_store(config: AegraConfig, url: DatabaseUrl, stack: AsyncExitStack) -> Any:
    if url.dialect == "sqlite":
        from langgraph.store.sqlite.aio import AsyncSqliteStore

        store = AsyncSqliteStore(await sqlite_connection(url, stack))
    else:
        from langgraph.store.postgres.aio import AsyncPostgresStore

        store = AsyncPostgresStore(await postgres_pool(url, stack))
    await store.setup()
    return store
