"""Threads: metadata, status and a copy of the latest state values (checkpoints live in the checkpointer)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from aegra_server.storage.common import Conflict, NotFound, Page, fetch_page, order_by, row_dict
from aegra_server.storage.database import Database, utcnow
from aegra_server.storage.filters import json_contains
from aegra_server.storage.tables import threads

SORTABLE = {"thread_id", "status", "created_at", "updated_at", "state_updated_at"}


def new_thread_row(thread_id: str | None, metadata: dict | None) -> dict[str, Any]:
    now = utcnow()
    return {
        "thread_id": thread_id or str(uuid.uuid4()),
        "status": "idle",
        "metadata": metadata or {},
        "config": {},
        "values": None,
        "interrupts": {},
        "created_at": now,
        "updated_at": now,
        "state_updated_at": now,
    }


class ThreadRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, *, thread_id: str | None = None, metadata: dict | None = None, if_exists: str = "raise"
    ) -> tuple[dict[str, Any], bool]:
        """The thread and whether it was created now (False when `do_nothing` found an existing one)."""
        row = new_thread_row(thread_id, metadata)
        async with self.db.write() as conn:
            existing = (await conn.execute(select(threads).where(threads.c.thread_id == row["thread_id"]))).first()
            if existing is not None:
                if if_exists == "do_nothing":
                    return row_dict(existing), False
                raise Conflict(f"thread {row['thread_id']} already exists")
            await conn.execute(insert(threads).values(row))
        return row, True

    async def get(self, thread_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = (await conn.execute(select(threads).where(threads.c.thread_id == thread_id))).first()
        if row is None:
            raise NotFound(f"thread {thread_id} not found")
        return row_dict(row)

    async def update_metadata(self, thread_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
        async with self.db.write() as conn:
            row = (await conn.execute(select(threads).where(threads.c.thread_id == thread_id))).first()
            if row is None:
                raise NotFound(f"thread {thread_id} not found")
            data = row_dict(row)
            data["metadata"] = {**data["metadata"], **metadata}
            data["updated_at"] = utcnow()
            await conn.execute(
                update(threads)
                .where(threads.c.thread_id == thread_id)
                .values(metadata=data["metadata"], updated_at=data["updated_at"])
            )
        return data

    async def set_state(self, thread_id: str, *, values: Any, interrupts: dict, status: str | None = None) -> None:
        """Record the state after an edit (update_state, copy, supersteps) or a run."""
        now = utcnow()
        changes: dict[str, Any] = {"values": values, "interrupts": interrupts, "updated_at": now, "state_updated_at": now}
        if status:
            changes["status"] = status
        async with self.db.write() as conn:
            await conn.execute(update(threads).where(threads.c.thread_id == thread_id).values(changes))

    async def delete(self, thread_id: str) -> None:
        async with self.db.write() as conn:
            deleted = await conn.execute(delete(threads).where(threads.c.thread_id == thread_id))
        if deleted.rowcount == 0:
            raise NotFound(f"thread {thread_id} not found")

    def _filtered(self, query, *, metadata=None, values=None, ids=None, status=None):
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
        self, *, metadata=None, values=None, ids=None, status=None, limit=10, offset=0, sort_by=None, sort_order=None
    ) -> Page:
        query = self._filtered(select(threads), metadata=metadata, values=values, ids=ids, status=status).order_by(
            *order_by(threads, sort_by, sort_order, SORTABLE, "created_at")
        )
        async with self.db.read() as conn:
            return await fetch_page(conn, query, limit=limit, offset=offset)

    async def count(self, *, metadata=None, values=None, status=None) -> int:
        query = self._filtered(select(func.count()).select_from(threads), metadata=metadata, values=values, status=status)
        async with self.db.read() as conn:
            return (await conn.execute(query)).scalar_one()
