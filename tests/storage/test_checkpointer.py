"""The server's SQLite checkpointer: LangGraph's AsyncSqliteSaver without its operation lock, so that
operations of many runs share the connection, and with one trip to the connection's thread per operation.
What it stores and reads must not change."""

from __future__ import annotations

import asyncio
import operator
import sqlite3
from contextlib import AsyncExitStack
from typing import Annotated, TypedDict

import aiosqlite
import pytest
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from aegra_server.storage.checkpointer import SqliteCheckpointer
from aegra_server.storage.connections import sqlite_connection
from aegra_server.storage.sqlite_sharing import FileLock
from aegra_server.storage.urls import parse_database_url


class State(TypedDict):
    log: Annotated[list[str], operator.add]


async def _step(state: State) -> dict:
    await asyncio.sleep(0)  # let other runs' operations in between
    return {"log": [f"s{len(state['log'])}"]}


def _graph(state: type = State, then=_step):
    """Two nodes in a row: `_step`, then `then`."""
    builder = StateGraph(state)
    builder.add_sequence([("a", _step), ("b", then)])
    builder.add_edge(START, "a")
    builder.add_edge("b", END)
    return builder


async def _history(saver, thread_id: str) -> list[tuple]:
    config = {"configurable": {"thread_id": thread_id}}
    return [
        (t.metadata["step"], t.checkpoint["channel_values"].get("log"), len(t.pending_writes or []))
        async for t in saver.alist(config)
    ]


async def test_many_runs_at_once_store_what_one_at_a_time_stores(tmp_path):
    threads = [f"t{i}" for i in range(24)]
    async with aiosqlite.connect(tmp_path / "one.db", isolation_level=None) as one, aiosqlite.connect(
        tmp_path / "many.db", isolation_level=None
    ) as many:
        reference, shared = AsyncSqliteSaver(one), SqliteCheckpointer(many)
        for saver in (reference, shared):
            await saver.setup()
        sequential = _graph().compile(checkpointer=reference)
        concurrent = _graph().compile(checkpointer=shared)
        for thread_id in threads:
            for _ in range(2):
                await sequential.ainvoke({"log": []}, {"configurable": {"thread_id": thread_id}})

        async def two_runs(thread_id: str) -> None:
            for _ in range(2):
                await concurrent.ainvoke({"log": []}, {"configurable": {"thread_id": thread_id}})

        async def reading() -> None:  # histories read while the runs write, on the same connection
            for thread_id in threads * 2:
                await _history(shared, thread_id)

        await asyncio.gather(*(two_runs(t) for t in threads), reading())
        for thread_id in threads:
            assert await _history(shared, thread_id) == await _history(reference, thread_id)
        state = await concurrent.aget_state({"configurable": {"thread_id": threads[0]}})
        assert state.values["log"] == ["s0", "s1", "s2", "s3"]


async def test_needs_an_autocommit_connection(tmp_path):
    async with aiosqlite.connect(tmp_path / "x.db") as conn:  # the driver's default: implicit transactions
        with pytest.raises(ValueError, match="autocommit"):
            SqliteCheckpointer(conn)


class Paused(TypedDict):
    log: Annotated[list[str], operator.add]
    answer: str


def _ask(state: Paused) -> dict:
    return {"answer": interrupt("yes or no?")}


@pytest.mark.parametrize("writer", ["ours", "langgraph's"])
async def test_each_checkpoint_reads_the_same_through_either_saver(tmp_path, writer):
    """What one writes the other reads alike: every checkpoint of a run paused at an interrupt (so with pending
    writes), by id and as the latest."""
    async with aiosqlite.connect(tmp_path / "x.db", isolation_level=None) as conn:
        ours, theirs = SqliteCheckpointer(conn), AsyncSqliteSaver(conn)
        for saver in (ours, theirs):
            await saver.setup()
        graph = _graph(Paused, then=_ask).compile(checkpointer=ours if writer == "ours" else theirs)
        config = {"configurable": {"thread_id": "t"}}
        await graph.ainvoke({"log": []}, config)
        assert (await graph.aget_state(config)).interrupts  # the run paused with pending writes
        configs = [config] + [t.config async for t in theirs.alist(config)]
        assert len(configs) == 4
        for at in configs:
            mine, reference = await ours.aget_tuple(at), await theirs.aget_tuple(at)
            assert mine == reference
        assert (await ours.aget_tuple(configs[0])).pending_writes  # the interrupt, among them
        assert await ours.aget_tuple({"configurable": {"thread_id": "nobody"}}) is None


class _Counting(aiosqlite.Connection):
    """Counts the calls sent to the connection's thread."""

    trips = 0

    async def _execute(self, fn, *args, **kwargs):
        self.trips += 1
        return await super()._execute(fn, *args, **kwargs)


async def test_each_operation_is_one_trip_to_the_connections_thread(tmp_path):
    conn = await _Counting(lambda: sqlite3.connect(tmp_path / "x.db", isolation_level=None), iter_chunk_size=64)
    try:
        saver = SqliteCheckpointer(conn)
        await saver.setup()
        graph = _graph().compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "t"}}
        await graph.ainvoke({"log": []}, config)
        stored = await saver.aget_tuple(config)
        calls = {
            "aget_tuple": lambda: saver.aget_tuple(config),
            "aput": lambda: saver.aput(stored.config, stored.checkpoint, stored.metadata, {}),
            "aput_writes": lambda: saver.aput_writes(stored.config, [("log", ["x"]), ("answer", "y")], "task"),
        }
        for name, call in calls.items():
            before = conn.trips
            await call()
            assert conn.trips - before == 1, name
    finally:
        await conn.close()


async def test_reads_need_no_turn_to_write(tmp_path):
    """With workers sharing the file, a write waits for its turn at the lock file; a read never does."""
    url = parse_database_url(f"sqlite:///{tmp_path / 'x.db'}")
    async with AsyncExitStack() as stack:
        conn = await sqlite_connection(url, stack, turns_with=tmp_path / "writes.lock")
        saver = SqliteCheckpointer(conn)
        await saver.setup()
        config = {"configurable": {"thread_id": "t"}}
        await _graph().compile(checkpointer=saver).ainvoke({"log": []}, config)
        stored = await saver.aget_tuple(config)
        other_worker = FileLock(tmp_path / "writes.lock")
        other_worker.acquire()  # another worker's turn
        try:
            assert (await asyncio.wait_for(saver.aget_tuple(config), 5)).checkpoint == stored.checkpoint
            write = asyncio.create_task(saver.aput(stored.config, stored.checkpoint, stored.metadata, {}))
            await asyncio.sleep(0.2)
            assert not write.done()
        finally:
            other_worker.release()
            other_worker.close()
        await asyncio.wait_for(write, 5)


async def _checkpoints(saver, thread_id: str, count: int) -> dict:
    """`count` checkpoints of one thread, written straight through the saver; the config of the last."""
    graph = _graph().compile(checkpointer=saver)
    config = {"configurable": {"thread_id": thread_id}}
    await graph.ainvoke({"log": []}, config)
    stored = await saver.aget_tuple(config)
    config = stored.config
    for _ in range(count):
        config = await saver.aput(config, {**stored.checkpoint, "id": _next_id()}, stored.metadata, {})
    return config


def _next_id() -> str:
    return str(uuid6())


async def test_a_history_being_read_never_fails_a_write_after_another_connection_wrote(tmp_path):
    """The server writes its own tables through another connection to the same file. A history still being read
    (more rows than one fetch takes) must not leave the checkpointer's connection on an old snapshot: SQLite
    refuses a write from a connection whose read began before another connection's commit (SQLITE_BUSY_SNAPSHOT,
    "database is locked", at once), which failed runs and deletes under load."""
    url = parse_database_url(f"sqlite:///{tmp_path / 'x.db'}")
    async with AsyncExitStack() as stack:
        saver = SqliteCheckpointer(await sqlite_connection(url, stack))
        await saver.setup()
        last = await _checkpoints(saver, "long", 100)
        other = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
        other.execute("CREATE TABLE ours (n INTEGER)")
        history = saver.alist({"configurable": {"thread_id": "long"}})
        try:
            assert (await anext(history)).config == last  # the newest first; the rest still to come
            other.execute("INSERT INTO ours VALUES (1)")
            stored = await saver.aget_tuple(last)
            await saver.aput(last, {**stored.checkpoint, "id": _next_id()}, stored.metadata, {})
            assert len([t async for t in history]) == 103  # the rest: 100 added and 4 of the run, less the first
        finally:
            await history.aclose()
            other.close()


async def test_a_write_waits_while_an_operation_of_several_calls_holds_the_connection(tmp_path):
    """Operations that take several calls to the connection's thread (AsyncSqliteSaver's own, such as deleting a
    thread, and those of storage.checkpoints) hold the saver's lock; a checkpoint write that comes meanwhile
    waits for it rather than land between their calls."""
    url = parse_database_url(f"sqlite:///{tmp_path / 'x.db'}")
    async with AsyncExitStack() as stack:
        saver = SqliteCheckpointer(await sqlite_connection(url, stack))
        await saver.setup()
        last = await _checkpoints(saver, "t", 1)
        stored = await saver.aget_tuple(last)
        async with saver.lock:
            write = asyncio.create_task(saver.aput(last, {**stored.checkpoint, "id": _next_id()}, stored.metadata, {}))
            await asyncio.sleep(0.1)
            assert not write.done()
            assert (await asyncio.wait_for(saver.aget_tuple(last), 5)) == stored  # reads go on meanwhile
        await asyncio.wait_for(write, 5)
