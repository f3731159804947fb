"""Threads: metadata, status and a copy of the latest state values (checkpoints live in the checkpointer)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from aegra_server.storage.common import (
    Conflict,
    NotFound,
    Page,
    fetch_page,
    first,
    insert_unless_taken,
    new_id,
    order_by,
)
from aegra_server.storage.database import Database, utcnow
from aegra_server.storage.filters import auth_filter_clause, json_contains
from aegra_server.storage.prepared import Prepared
from aegra_server.storage.tables import threads

SORTABLE = {"thread_id", "status", "created_at", "updated_at", "state_updated_at"}
_INSERT = Prepared(insert(threads))  # on every run's path (a thread per run is common): see storage.prepared


def insert_thread(conn: Connection, row: dict[str, Any]) -> bool:
    """A new thread's row, unless another transaction has made the thread since this one found it missing."""
    return insert_unless_taken(conn, threads, row, on_sqlite=_INSERT)


def new_thread_row(thread_id: str | None, metadata: dict | None) -> dict[str, Any]:
    now = utcnow()
    return {
        "thread_id": thread_id or new_id(),
        "status": "idle",
        "metadata": metadata or {},
        "config": {},
        "values": None,
        "interrupts": {},
        "created_at": now,
        "updated_at": now,
        "state_updated_at": now,
        "error": None,
    }


def config_taken_by_run(thread: dict[str, Any], assistant: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """A thread's `config` once a run takes it (creates it, or finds it free), as langgraph-api keeps it: the
    assistant's config under the thread's, under the run's; but `configurable` only from the assistant under the
    thread's, never the run's own (per-run values such as keys stay with that run). Later runs of the thread see
    this `configurable` under theirs, so a thread goes on with the configurable of the assistant that first ran it,
    and factories building the thread's graph for state reads get this config."""
    configurable = {**(assistant.get("configurable") or {}), **(thread.get("configurable") or {})}
    return {**assistant, **thread, **run, "configurable": configurable}


def graph_config_of(thread: dict[str, Any]) -> dict[str, Any]:
    """The config a thread's graph is built with for reading or editing its state: the thread's config (see
    config_taken_by_run), naming the thread, as langgraph-api builds it; a factory sees what the thread's runs set."""
    thread_config = thread.get("config") or {}
    configurable = {**(thread_config.get("configurable") or {}), "thread_id": thread["thread_id"]}
    return {**thread_config, "configurable": configurable}


def _ttl_columns(ttl: dict[str, Any] | None) -> dict[str, Any]:
    if not ttl:
        return {}
    return {"ttl": ttl, "expires_at": utcnow() + timedelta(minutes=ttl["ttl"])}


def by_id(thread_id: str):
    return select(threads).where(threads.c.thread_id == thread_id)


def _visible(query, auth_filter: dict[str, Any] | None, dialect: str):
    """Only threads an authorization filter lets through: the others look missing (404)."""
    return query.where(auth_filter_clause(threads.c.metadata, auth_filter, dialect)) if auth_filter else query


class ThreadRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        thread_id: str | None = None,
        metadata: dict | None = None,
        if_exists: str = "raise",
        ttl: dict[str, Any] | None = None,
        auth_filter: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """The thread and whether it was created now (False when `do_nothing` found an existing one).

        An existing thread that `auth_filter` hides is a conflict even with `do_nothing`: the caller may not
        have it, and may not make one with its id."""
        row = {**new_thread_row(thread_id, metadata), **_ttl_columns(ttl)}

        def create(conn: Connection) -> tuple[dict[str, Any], bool]:
            if thread_id is not None:  # a fresh uuid7 cannot collide; skip the lookup
                existing = first(conn, by_id(thread_id))
                if existing is not None:
                    if if_exists == "do_nothing" and (
                        not auth_filter or first(conn, _visible(by_id(thread_id), auth_filter, self.db.dialect))
                    ):
                        return existing, False
                    raise Conflict(f"thread {thread_id} already exists")
            if not insert_thread(conn, row):
                return create(conn)  # made meanwhile by another client: as if it had been there already
            return row, True

        return await self.db.write(create)

    async def get(self, thread_id: str, *, auth_filter: dict[str, Any] | None = None) -> dict[str, Any]:
        row = await self.db.read(first, _visible(by_id(thread_id), auth_filter, self.db.dialect))
        if row is None:
            raise NotFound(f"thread {thread_id} not found")
        return row

    async def update_metadata(
        self,
        thread_id: str,
        metadata: dict[str, Any],
        ttl: dict[str, Any] | None = None,
        *,
        auth_filter: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Merge metadata; a given `ttl` restarts the thread's time to live from now."""

        def merge(conn: Connection) -> dict[str, Any]:
            row = first(conn, _visible(by_id(thread_id), auth_filter, self.db.dialect))
            if row is None:
                raise NotFound(f"thread {thread_id} not found")
            row["metadata"] = {**row["metadata"], **metadata}
            row["updated_at"] = utcnow()
            changes = {"metadata": row["metadata"], "updated_at": row["updated_at"]}
            if ttl is not None:
                changes.update(_ttl_columns(ttl))
                row.update(_ttl_columns(ttl))
            conn.execute(update(threads).where(threads.c.thread_id == thread_id).values(changes))
            return row

        return await self.db.write(merge)

    async def set_state(self, thread_id: str, *, values: Any, interrupts: dict, status: str | None = None) -> None:
        """Record the state after an edit (update_state, copy, supersteps). The edit clears the thread's error, as
        langgraph-api's does: the state no longer is what the failed run left."""
        now = utcnow()
        changes: dict[str, Any] = {
            "values": values, "interrupts": interrupts, "updated_at": now, "state_updated_at": now, "error": None
        }
        if status:
            changes["status"] = status
        query = update(threads).where(threads.c.thread_id == thread_id).values(changes)
        await self.db.write(lambda conn: conn.execute(query))

    async def set_status_if_idle(self, thread_id: str, status: str) -> None:
        """The thread's status, unless something made it other than idle meanwhile (a run that started)."""
        query = (update(threads).where(threads.c.thread_id == thread_id, threads.c.status == "idle")
                 .values(status=status, updated_at=utcnow()))
        await self.db.write(lambda conn: conn.execute(query))

    async def delete(self, thread_id: str, *, auth_filter: dict[str, Any] | None = None) -> None:
        query = delete(threads).where(threads.c.thread_id == thread_id)
        if auth_filter:
            query = query.where(auth_filter_clause(threads.c.metadata, auth_filter, self.db.dialect))
        if await self.db.write(lambda conn: conn.execute(query).rowcount) == 0:
            raise NotFound(f"thread {thread_id} not found")

    async def expired(self, limit: int = 100) -> list[str]:
        """Threads whose time to live has passed."""
        query = select(threads.c.thread_id).where(threads.c.expires_at <= utcnow()).limit(limit)
        return await self.db.read(lambda conn: list(conn.execute(query).scalars()))

    def _filtered(self, query, *, metadata=None, values=None, ids=None, status=None, auth_filter=None):
        query = _visible(query, auth_filter, self.db.dialect)
        if metadata:
            query = query.where(json_contains(threads.c.metadata, metadata, self.db.dialect))
        if values:
            query = query.where(json_contains(threads.c["values"], values, self.db.dialect))
        if ids:
            query = query.where(threads.c.thread_id.in_(ids))
        if status:
            query = query.where(threads.c.status == status)
        return query

    async def search(
        self,
        *,
        metadata=None,
        values=None,
        ids=None,
        status=None,
        limit=10,
        offset=0,
        sort_by=None,
        sort_order=None,
        auth_filter=None,
    ) -> Page:
        query = self._filtered(
            select(threads), metadata=metadata, values=values, ids=ids, status=status, auth_filter=auth_filter
        ).order_by(
            *order_by(threads, sort_by, sort_order, SORTABLE, "created_at")
        )
        return await self.db.read(lambda conn: fetch_page(conn, query, limit=limit, offset=offset))

    async def count(self, *, metadata=None, values=None, status=None, auth_filter=None) -> int:
        query = self._filtered(
            select(func.count()).select_from(threads),
            metadata=metadata,
            values=values,
            status=status,
            auth_filter=auth_filter,
        )
        return await self.db.read(lambda conn: conn.execute(query).scalar_one())
