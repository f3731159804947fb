"""Runs: one row per run, created pending before any work starts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, exists, insert, select, update

from aegra_server.storage.common import NotFound, first, row_dict
from aegra_server.storage.database import Database, utcnow
from aegra_server.storage.tables import assistants, runs, threads
from aegra_server.storage.threads import new_thread_row

ACTIVE = ("pending", "running")

# The statements every run executes, built once: SQLAlchemy then reuses their compiled form instead of
# constructing and cache-keying new ones per call.
_ASSISTANT = select(assistants).where(assistants.c.assistant_id == bindparam("b_assistant_id"))
_THREAD_METADATA = select(threads.c.metadata).where(threads.c.thread_id == bindparam("b_thread_id"))
_INSERT_THREAD = insert(threads)
_INSERT_RUN = insert(runs)
_MARK_BUSY = (
    update(threads)
    .where(threads.c.thread_id == bindparam("b_thread_id"))
    .values(status="busy", updated_at=bindparam("b_now"), metadata=bindparam("b_metadata", type_=threads.c.metadata.type))
)
_SET_STATUS = (
    update(runs)
    .where(runs.c.run_id == bindparam("b_run_id"))
    .values(status=bindparam("b_status"), updated_at=bindparam("b_now"))
)
_THREAD_HAS_ACTIVE_RUNS = select(
    exists().where(and_(runs.c.thread_id == bindparam("b_thread_id"), runs.c.status.in_(ACTIVE)))
)
_SET_THREAD_STATUS = (
    update(threads)
    .where(threads.c.thread_id == bindparam("b_thread_id"))
    .values(status=bindparam("b_status"), updated_at=bindparam("b_now"))
)
_SET_THREAD_STATE = _SET_THREAD_STATUS.values(
    values=bindparam("b_values", type_=threads.c["values"].type),
    interrupts=bindparam("b_interrupts", type_=threads.c.interrupts.type),
    state_updated_at=bindparam("b_now"),
)


class RunRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, run: dict[str, Any], *, create_thread: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """Insert a pending run and mark its thread busy, in one transaction; returns (run, its assistant).

        The assistant is read in the same transaction (one round trip). `create_thread` makes the thread
        when it is missing (stateless runs, if_not_exists=create). The thread's metadata gets `graph_id` and
        `assistant_id`, as langgraph-api stamps them: Agent Chat UI's thread list searches on exactly that.
        """
        thread_id = run["thread_id"]
        now = utcnow()
        run = {**run, "status": "pending", "created_at": now, "updated_at": now}

        def create(conn: Connection) -> tuple[dict[str, Any], dict[str, Any]]:
            assistant = first(conn, _ASSISTANT, {"b_assistant_id": run["assistant_id"]})
            if assistant is None:
                raise NotFound(f"assistant {run['assistant_id']} not found")
            stamp = {"graph_id": assistant["graph_id"], "assistant_id": assistant["assistant_id"]}
            metadata = conn.execute(_THREAD_METADATA, {"b_thread_id": thread_id}).scalar()
            if metadata is None:
                if not create_thread:
                    raise NotFound(f"thread {thread_id} not found")
                conn.execute(_INSERT_THREAD, {**new_thread_row(thread_id, stamp), "status": "busy"})
            else:
                conn.execute(_MARK_BUSY, {"b_thread_id": thread_id, "b_now": now, "b_metadata": {**metadata, **stamp}})
            conn.execute(_INSERT_RUN, run)
            return run, assistant

        return await self.db.write(create)

    async def get(self, run_id: str, thread_id: str | None = None) -> dict[str, Any]:
        query = select(runs).where(runs.c.run_id == run_id)
        if thread_id is not None:
            query = query.where(runs.c.thread_id == thread_id)
        row = await self.db.read(first, query)
        if row is None:
            raise NotFound(f"run {run_id} not found")
        return row

    async def list(self, thread_id: str, *, limit=10, offset=0, status=None) -> list[dict[str, Any]]:
        query = select(runs).where(runs.c.thread_id == thread_id)
        if status:
            query = query.where(runs.c.status == status)
        query = query.order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit).offset(offset)
        return await self.db.read(lambda conn: [row_dict(r) for r in conn.execute(query).all()])

    async def pending(self) -> list[dict[str, Any]]:
        """Runs not finished, oldest first: what a restarted server must pick up again."""
        query = select(runs).where(runs.c.status.in_(ACTIVE)).order_by(runs.c.created_at, runs.c.run_id)
        return await self.db.read(lambda conn: [row_dict(r) for r in conn.execute(query).all()])

    async def set_status(self, run_id: str, status: str) -> None:
        params = {"b_run_id": run_id, "b_status": status, "b_now": utcnow()}
        await self.db.write(lambda conn: conn.execute(_SET_STATUS, params))

    async def finish(
        self, run: dict[str, Any], *, status: str, thread_status: str, values: Any, interrupts: dict | None
    ) -> None:
        """Record a run's end and its thread's new state in one transaction.

        The thread stays busy while another run of it is still pending or running; `interrupts=None` leaves
        the thread's recorded state as it was.
        """
        now = utcnow()
        thread_id = run["thread_id"]

        def finish(conn: Connection) -> None:
            conn.execute(_SET_STATUS, {"b_run_id": run["run_id"], "b_status": status, "b_now": now})
            busy = conn.execute(_THREAD_HAS_ACTIVE_RUNS, {"b_thread_id": thread_id}).scalar()
            params = {"b_thread_id": thread_id, "b_status": "busy" if busy else thread_status, "b_now": now}
            if interrupts is None:
                conn.execute(_SET_THREAD_STATUS, params)
            else:
                conn.execute(_SET_THREAD_STATE, {**params, "b_values": values, "b_interrupts": interrupts})

        await self.db.write(finish)

    async def delete(self, run_id: str, thread_id: str | None = None) -> None:
        query = delete(runs).where(runs.c.run_id == run_id)
        if thread_id is not None:
            query = query.where(runs.c.thread_id == thread_id)
        if await self.db.write(lambda conn: conn.execute(query).rowcount) == 0:
            raise NotFound(f"run {run_id} not found")
