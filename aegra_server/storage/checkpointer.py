"""LangGraph's SQLite checkpointer as the server runs it: AsyncSqliteSaver with one trip to the connection's thread
per operation, and its operation lock taken only where an operation needs it.

The lock. AsyncSqliteSaver holds an asyncio lock around every operation, the thread hop to its aiosqlite
connection and back included. In a server running many graphs at once, every checkpoint of every run then
waits for the previous one to come back through the event loop, which under load is a full loop iteration: the
process idles while runs queue for the lock. Measured at 32 concurrent runs: the server 210 → 254 runs/s over
HTTP; 32 `ainvoke`s in one process ~300 → ~530 runs/s. Operations of one trip need no lock: the connection is
in autocommit mode (see storage.connections), so each statement is its own transaction, and aiosqlite runs
every call in order on its one thread, so no two statements overlap. A read that interleaves with a write sees
it or not, as it would after the lock.

Operations of several calls still take the lock (AsyncSqliteSaver's deleting of a thread and its delta-channel
reads, storage.checkpoints' own), and a write waits while one holds it. A SELECT whose rows are fetched in a
later call keeps its connection on the snapshot it began with, and SQLite refuses that connection a write once
another connection has committed since (SQLITE_BUSY_SNAPSHOT, "database is locked" at once, whatever the busy
timeout): our own tables are written through another connection to the file, on this same thread. Listing,
which AsyncSqliteSaver did as such a SELECT fetched between its `yield`s, is one trip here, so a history read
holds nothing while its reader goes on, or abandons it.

The trips. aiosqlite sends each call (cursor, execute, fetch, commit, close) to its thread and back through the
event loop as a trip of its own: AsyncSqliteSaver's read of a checkpoint takes five, a checkpoint write three,
a write of a task's results four. The operations every step of every run makes (`aget_tuple`, `aput`,
`aput_writes`) and listing take one trip each here: values are serialised and deserialised on the event loop, as
AsyncSqliteSaver does them (so no other thread reads a value a node may still change), and only the
statements go to the connection's thread, together. Measured on throughput.py's floor (a one-node graph, one
`ainvoke` per new thread): p50 2.2 → 1.6 ms sequential, ~650 → ~730 runs/s at 32 concurrent; the server's CPU
time per create-thread + wait 3.76 → 3.54 ms (cpu_per_request.py).

Tables, rows, statements and serialisation are LangGraph's own: a database stays readable by
AsyncSqliteSaver, and back (tests/storage/test_checkpointer.py checks both ways). Deleting stays
AsyncSqliteSaver's. Should aiosqlite drop the two private names used (`_execute`, the method every call goes
through, and `_conn`, its sqlite3 connection), every operation falls back to AsyncSqliteSaver's own: slower,
still correct.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any

from langgraph.checkpoint.base import WRITES_IDX_MAP, CheckpointTuple, get_checkpoint_id, get_checkpoint_metadata
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.checkpoint.sqlite.utils import load_pending_writes, pending_writes_sql, search_where

from aegra_server.storage import write_fence
from aegra_server.storage.connections import reads_only

_COLUMNS = "thread_id, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata"
_LATEST = f"SELECT {_COLUMNS} FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? ORDER BY checkpoint_id DESC LIMIT 1"
_AT = f"SELECT {_COLUMNS} FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
_PUT = (
    "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
    "checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_WRITES = (
    "INSERT OR {conflict} INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, "
    "type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Writes to special channels (errors, interrupts...) replace an earlier attempt's; a task's own writes, once
# stored, stay (LangGraph's rule, by channel).
_WRITES_REPLACE, _WRITES_IGNORE = _WRITES.format(conflict="REPLACE"), _WRITES.format(conflict="IGNORE")


# ---- what runs on the connection's thread, one call per operation ------------------------------------------------


def _execute(db: sqlite3.Connection, sql: str, params: tuple) -> None:
    db.execute(sql, params)


def _executemany(db: sqlite3.Connection, sql: str, rows: list[tuple]) -> None:
    db.executemany(sql, rows)


@reads_only
def _read(
    db: sqlite3.Connection, thread_id: str, ns: str, checkpoint_id: str | None, writes_sql: str
) -> tuple[tuple | None, list[tuple]]:
    """A checkpoint's row (the latest of the thread when no id is given) and its pending writes' rows."""
    if checkpoint_id:
        row = db.execute(_AT, (thread_id, ns, checkpoint_id)).fetchone()
    else:
        row = db.execute(_LATEST, (thread_id, ns)).fetchone()
    if row is None:
        return None, []
    return row, db.execute(writes_sql, (thread_id, ns, row[1])).fetchall()


@reads_only
def _list(db: sqlite3.Connection, sql: str, params: tuple, writes_sql: str) -> list[tuple[tuple, list[tuple]]]:
    """Every checkpoint row the query selects, each with its pending writes' rows, read to the end."""
    rows = db.execute(sql, params).fetchall()
    return [(row, db.execute(writes_sql, (row[0], row[1], row[2])).fetchall()) for row in rows]


class SqliteCheckpointer(AsyncSqliteSaver):
    def __init__(self, conn, *args, **kwargs) -> None:
        if conn.isolation_level is not None:
            raise ValueError("SqliteCheckpointer needs an autocommit connection (isolation_level=None)")
        super().__init__(conn, *args, **kwargs)
        self.lock = asyncio.Lock()  # taken by operations of several calls only: see the module's docstring
        self._one_trip = callable(getattr(conn, "_execute", None)) and isinstance(
            getattr(type(conn), "_conn", None), property
        )

    async def setup(self) -> None:
        if not self.is_setup:  # AsyncSqliteSaver's takes the lock first, on every operation
            await super().setup()

    async def _trip(self, fn, *args: Any) -> Any:
        return await self.conn._execute(fn, self.conn._conn, *args)

    async def _write_trip(self, fn, *args: Any) -> Any:
        """`fn` on the connection's thread once no operation of several calls holds the lock. Nothing is awaited
        between seeing the lock free and queueing the call, and the thread takes calls in order, so the write
        is done before the next such operation's first call."""
        while self.lock.locked():
            async with self.lock:
                pass
        return await self._trip(fn, *args)

    async def aget_tuple(self, config: dict) -> CheckpointTuple | None:
        if not self._one_trip:
            return await super().aget_tuple(config)
        await self.setup()
        conf = config["configurable"]
        ns = conf.get("checkpoint_ns", "")
        asked = get_checkpoint_id(config)
        row, writes = await self._trip(_read, str(conf["thread_id"]), ns, asked, pending_writes_sql(self._has_task_path))
        if row is None:
            return None
        thread_id, checkpoint_id, parent_id, type_, checkpoint, metadata = row
        if not asked:
            config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}
        parent = (
            {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": parent_id}}
            if parent_id
            else None
        )
        return CheckpointTuple(
            config,
            self.serde.loads_typed((type_, checkpoint)),
            json.loads(metadata) if metadata is not None else {},
            parent,
            load_pending_writes(writes, self.serde),
        )

    async def aput(self, config: dict, checkpoint: dict, metadata: dict, new_versions: dict) -> dict:
        await write_fence.check()  # a run's graph writes only while its process holds the run
        if not self._one_trip:
            return await super().aput(config, checkpoint, metadata, new_versions)
        await self.setup()
        conf = config["configurable"]
        thread_id, ns = conf["thread_id"], conf["checkpoint_ns"]
        type_, serialized = self.serde.dumps_typed(checkpoint)
        meta = json.dumps(get_checkpoint_metadata(config, metadata), ensure_ascii=False).encode("utf-8", "ignore")
        row = (str(thread_id), ns, checkpoint["id"], conf.get("checkpoint_id"), type_, serialized, meta)
        await self._write_trip(_execute, _PUT, row)
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}}

    async def aput_writes(
        self, config: dict, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await write_fence.check()
        if not self._one_trip:
            return await super().aput_writes(config, writes, task_id, task_path)
        await self.setup()
        conf = config["configurable"]
        key = (str(conf["thread_id"]), str(conf["checkpoint_ns"]), str(conf["checkpoint_id"]), task_id, task_path)
        rows = [
            (*key, WRITES_IDX_MAP.get(channel, idx), channel, *self.serde.dumps_typed(value))
            for idx, (channel, value) in enumerate(writes)
        ]
        sql = _WRITES_REPLACE if all(channel in WRITES_IDX_MAP for channel, _ in writes) else _WRITES_IGNORE
        await self._write_trip(_executemany, sql, rows)

    async def alist(
        self,
        config: dict | None,
        *,
        filter: dict[str, Any] | None = None,
        before: dict | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        if not self._one_trip:
            async for item in super().alist(config, filter=filter, before=before, limit=limit):
                yield item
            return
        await self.setup()
        where, params = search_where(config, filter, before)
        sql = (
            "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata "
            f"FROM checkpoints {where} ORDER BY checkpoint_id DESC"
        )
        if limit is not None:
            sql, params = sql + " LIMIT ?", (*params, limit)
        rows = await self._trip(_list, sql, tuple(params), pending_writes_sql(self._has_task_path))
        for (thread_id, ns, checkpoint_id, parent_id, type_, checkpoint, metadata), writes in rows:
            yield CheckpointTuple(
                {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}},
                self.serde.loads_typed((type_, checkpoint)),
                json.loads(metadata) if metadata is not None else {},
                (
                    {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": parent_id}}
                    if parent_id
                    else None
                ),
                load_pending_writes(writes, self.serde),
            )
