"""The long-term memory store (LangGraph's BaseStore) behind /store and graphs' `store` argument.

`open_store` builds it from aegra.json's `store` section on the server's database:

- `store.index` (`dims`, `embed`, `fields`) turns on semantic search: pgvector on Postgres, a Python-scored
  index on SQLite that needs no extension (aegra_server/store_index.py). `embed` is resolved at start-up
  (aegra_server/embeddings.py), so a missing provider package stops the server with a ConfigError.
- `store.ttl` (`default_ttl` and `sweep_interval_minutes` in minutes, `refresh_on_read`) becomes the stores'
  TTLConfig. The TTL sweeper always runs (every 5 minutes unless configured), so items put with a `ttl`
  expire even without `store.ttl`; it stops before the database connection closes.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import Any

from langgraph.store.base import TTLConfig

from aegra_server.config import AegraConfig
from aegra_server.embeddings import CheckedEmbeddings, resolve_embeddings
from aegra_server.errors import ConfigError, DatabaseError
from aegra_server.storage.connections import postgres_pool, sqlite_connection
from aegra_server.storage.urls import DatabaseUrl
from aegra_server.store_index import AegraPostgresStore, AegraSqliteStore

logger = logging.getLogger(__name__)

SWEEPER_STOP_TIMEOUT = 10.0


def index_config(config: AegraConfig) -> dict[str, Any] | None:
    """The stores' IndexConfig for `store.index`, with the embeddings resolved; None without one."""
    index = config.store.index if config.store else None
    if index is None:
        return None
    embeddings = CheckedEmbeddings(resolve_embeddings(config), index.dims)
    return {"dims": index.dims, "embed": embeddings, "fields": list(index.fields or ["$"])}


def ttl_config(config: AegraConfig) -> TTLConfig | None:
    ttl = config.store.ttl if config.store else None
    if ttl is None:
        return None
    data = ttl.model_dump(exclude={"strategy"}, exclude_none=True)
    return TTLConfig(**data)  # type: ignore[typeddict-item]


async def open_store(
    config: AegraConfig, url: DatabaseUrl, stack: AsyncExitStack, postgres_connections: int = 20
) -> Any:
    index = index_config(config)
    ttl = ttl_config(config)
    if url.dialect == "sqlite":
        store: Any = AegraSqliteStore(await sqlite_connection(url, stack), index=index, ttl=ttl)
        await store.setup()
    else:
        store = AegraPostgresStore(await postgres_pool(url, stack, size=postgres_connections), index=index, ttl=ttl)
        await _setup_postgres(store, index)
    await store.start_ttl_sweeper()
    stack.push_async_callback(_stop_sweeper, store)
    return store


async def _stop_sweeper(store: Any) -> None:
    if not await store.stop_ttl_sweeper(timeout=SWEEPER_STOP_TIMEOUT):
        logger.warning("the store's TTL sweeper did not stop within %s s", SWEEPER_STOP_TIMEOUT)


async def _setup_postgres(store: AegraPostgresStore, index: dict[str, Any] | None) -> None:
    import psycopg

    try:
        await store.setup()
    except psycopg.Error as exc:
        if index is not None and "vector" in str(exc).lower():
            raise DatabaseError(
                f"semantic store search (store.index) needs the pgvector extension: {exc}".strip(),
                "install pgvector on the Postgres server (e.g. the pgvector/pgvector image) and let a superuser "
                "run CREATE EXTENSION vector in this database once; or remove store.index from aegra.json",
            ) from exc
        raise
    if index is not None:
        await _check_postgres_dims(store, int(index["dims"]))


async def _check_postgres_dims(store: AegraPostgresStore, dims: int) -> None:
    """store_vectors keeps the dimension it was created with; a different `dims` would fail on every put."""
    async with store._cursor() as cur:
        await cur.execute(
            "SELECT atttypmod AS dims FROM pg_attribute "
            "WHERE attrelid = to_regclass('store_vectors') AND attname = 'embedding'"
        )
        row = await cur.fetchone()
    existing = row["dims"] if row else None
    if existing is not None and existing > 0 and existing != dims:
        raise ConfigError(
            f"store.index.dims is {dims}, but this database's store vectors have {existing} dimensions",
            f"set dims back to {existing}, or drop the store_vectors table and the vector_migrations rows "
            "so that they are rebuilt (stored embeddings are lost and items must be put again)",
        )
