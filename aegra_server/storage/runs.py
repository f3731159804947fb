"""Runs: one row per run, created pending before any work starts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, exists, insert, select, update

from aegra_server.storage.common import NotFound, row_dict
from aegra_server.storage.database import Database, utcnow
from aegra_server.storage.tables import runs, threads
from aegra_server.storage.threads import new_thread_row

ACTIVE = ("pending", "running")


class RunRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        run: dict[str, Any],
        *,
        create_thread: bool,
        stamp_metadata: dict[str, Any],
    ) -> dict[str, Any]:
        """Insert a pending run and mark its thread busy, in one transaction.

        `create_thread` makes the thread when it is missing (stateless runs, if_not_exists=create);
        `stamp_metadata` (graph_id, assistant_id) is merged into the thread's metadata, as langgraph-api does
        on a thread's runs, which is what Agent Chat UI's thread list searches on.
        """
        thread_id = run["thread_id"]
        now = utcnow()
        async with self.db.write() as conn:
            thread = (await conn.execute(select(threads.c.metadata).where(threads.c.thread_id == thread_id))).first()
            if thread is None:
                if not create_thread:
                    raise NotFound(f"thread {thread_id} not found")
                row = new_thread_row(thread_id, stamp_metadata)
                row["status"] = "busy"
                await conn.execute(insert(threads).values(row))
            else:
                await conn.execute(
                    update(threads)
                    .where(threads.c.thread_id == thread_id)
                    .values(status="busy", updated_at=now, metadata={**thread.metadata, **stamp_metadata})
                )
            run = {**run, "status": "pending", "created_at": now, "updated_at": now}
            await conn.execute(insert(runs).values(run))
        return run

    async def get(self, run_id: str, thread_id: str | None = None) -> dict[str, Any]:
        query = select(runs).where(runs.c.run_id == run_id)
        if thread_id is not None:
            query = query.where(runs.c.thread_id == thread_id)
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound(f"run {run_id} not found")
        return row_dict(row)

    async def list(self, thread_id: str, *, limit=10, offset=0, status=None) -> list[dict[str, Any]]:
        query = select(runs).where(runs.c.thread_id == thread_id)
        if status:
            query = query.where(runs.c.status == status)
        query = query.order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit).offset(offset)
        async with self.db.read() as conn:
            return [row_dict(r) for r in (await conn.execute(query)).all()]

    async def pending(self) -> list[dict[str, Any]]:
        """Runs not finished, oldest first: what a restarted server must pick up again."""
        query = select(runs).where(runs.c.status.in_(ACTIVE)).order_by(runs.c.created_at, runs.c.run_id)
        async with self.db.read() as conn:
            return [row_dict(r) for r in (await conn.execute(query)).all()]

    async def set_status(self, run_id: str, status: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(update(runs).where(runs.c.run_id == run_id).values(status=status, updated_at=utcnow()))

    async def finish(
        self, run: dict[str, Any], *, status: str, thread_status: str, values: Any, interrupts: dict | None
    ) -> None:
        """Record a run's end and its thread's new state in one transaction.

        The thread stays busy while another run of it waits in the queue.
        """
        now = utcnow()
        thread_id = run["thread_id"]
        async with self.db.write() as conn:
            await conn.execute(update(runs).where(runs.c.run_id == run["run_id"]).values(status=status, updated_at=now))
            others = exists().where(and_(runs.c.thread_id == thread_id, runs.c.status.in_(ACTIVE)))
            busy = (await conn.execute(select(others))).scalar()
            changes: dict[str, Any] = {"status": "busy" if busy else thread_status, "updated_at": now}
            if interrupts is not None:
                changes.update(values=values, interrupts=interrupts, state_updated_at=now)
            await conn.execute(update(threads).where(threads.c.thread_id == thread_id).values(changes))

    async def delete(self, run_id: str, thread_id: str | None = None) -> None:
        query = delete(runs).where(runs.c.run_id == run_id)
        if thread_id is not None:
            query = query.where(runs.c.thread_id == thread_id)
        async with self.db.write() as conn:
            deleted = await conn.execute(query)
        if deleted.rowcount == 0:
            raise NotFound(f"run {run_id} not found")
