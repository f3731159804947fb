"""Everything one server process holds while it runs, opened in the app's lifespan and closed after it."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aegra_server import migrations
from aegra_server.config import AegraConfig, load_config
from aegra_server.crons import CronScheduler
from aegra_server.graphs import GraphRegistry, default_assistant_id
from aegra_server.observability.runs import RunObserver
from aegra_server.runs.bus import LocalBus, PostgresBus, SocketBus
from aegra_server.runs.manager import RunManager
from aegra_server.runs.webhooks import WebhookSender
from aegra_server.settings import Settings
from aegra_server.storage import sqlite_sharing
from aegra_server.storage.connections import (
    PostgresConnections,
    postgres_connections,
    postgres_pool,
    postgres_setup_lock,
    sqlite_connection,
)
from aegra_server.storage.database import Database
from aegra_server.store import open_store
from aegra_server.sweeper import Sweeper
from aegra_server.storage.repositories import Repositories
from aegra_server.storage.tables import metadata
from aegra_server.storage.urls import DatabaseUrl, parse_database_url

log = logging.getLogger("aegra.services")


@dataclass
class Services:
    settings: Settings
    config: AegraConfig
    registry: GraphRegistry
    repos: Repositories
    checkpointer: Any
    store: Any
    runs: RunManager
    crons: CronScheduler
    sweeper: Sweeper


async def _open_checkpointer(
    url: DatabaseUrl, db: Database, stack: AsyncExitStack, bus: LocalBus, pools: PostgresConnections
) -> Any:
    """LangGraph's checkpointer (on SQLite, the server's variant of it) on the same database as our tables."""
    if url.dialect == "sqlite":
        from aegra_server.storage.checkpointer import SqliteCheckpointer

        # Workers sharing the file take turns writing it (see storage.connections).
        turns_with = bus.folder / "writes.lock" if isinstance(bus, SocketBus) else None
        connection = await sqlite_connection(url, stack, turns_with=turns_with)
        db.writes_on(connection)  # one writing thread: see aegra_server.storage.database
        checkpointer = SqliteCheckpointer(connection)
    else:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        checkpointer = AsyncPostgresSaver(await postgres_pool(url, stack, size=pools.checkpointer, fenced=True))
    await checkpointer.setup()
    return checkpointer


def _setting_up_alone(url: DatabaseUrl, bus: LocalBus):
    """Processes starting together on one database (workers, or servers on one Postgres) set it up one at a time:
    migrations, LangGraph's store migrations and the default assistants read, then write, and two at once would
    both write (a duplicate default assistant failed a worker's start-up)."""
    if isinstance(bus, SocketBus):
        return sqlite_sharing.holding(bus.folder / "startup.lock")
    if url.dialect == "postgresql":
        return postgres_setup_lock(url)
    return nullcontext()


def _bus(url: DatabaseUrl, folder: Path | None, workers: int) -> LocalBus:
    """How this process signals the others on its database (aegra_server.runs.bus); `folder` is the SQLite
    file's (storage.sqlite_sharing)."""
    if url.dialect == "postgresql":
        return PostgresBus(url.conninfo)
    return SocketBus(folder) if workers > 1 else LocalBus()


async def open_services(settings: Settings, stack: AsyncExitStack, observer: RunObserver | None = None) -> Services:
    config = load_config(settings.config_path)
    webhooks = WebhookSender(config.webhooks)  # first: a header's missing variable stops the start at once
    registry = await asyncio.to_thread(GraphRegistry.load, config)
    stack.push_async_callback(registry.aclose)
    url = parse_database_url(settings.resolved_database_url())
    # On Postgres, every pool sized so that the process stays within its share of the server's connections.
    pools = await postgres_connections(url, settings.postgres_connections, settings.workers)
    db = Database(url, pools.tables)
    stack.push_async_callback(db.close)
    repos = Repositories.build(db)
    # Marked as served by this process (and its fellow workers) until the server stops.
    folder = stack.enter_context(sqlite_sharing.serving(url, settings.workers))
    bus = _bus(url, folder, settings.workers)
    async with _setting_up_alone(url, bus):
        if url.is_memory:
            # A private in-memory database exists only on our engine's connection, so it gets the schema there.
            await db.write(metadata.create_all)
        else:
            await asyncio.to_thread(migrations.upgrade, settings.resolved_database_url())
        checkpointer = await _open_checkpointer(url, db, stack, bus, pools)
        store = await open_store(config, url, stack, pools.store)
        removed = await repos.assistants.ensure_defaults(
            {g: default_assistant_id(g) for g in registry.ids}, {g: registry.description(g) for g in registry.ids}
        )
        if removed:
            log.warning("deleted the default assistants of graphs no longer in the config: %s", ", ".join(removed))
    runs = RunManager(repos, registry, checkpointer, store, settings, bus, observer, webhooks)
    await runs.start()
    stack.push_async_callback(runs.shutdown)
    crons = CronScheduler(repos, runs)
    crons.start()
    stack.push_async_callback(crons.stop)
    sweeper = Sweeper(repos, runs, settings.thread_sweep_seconds, settings.run_events_retention_seconds)
    sweeper.start()
    stack.push_async_callback(sweeper.stop)
    return Services(settings, config, registry, repos, checkpointer, store, runs, crons=crons, sweeper=sweeper)
