"""The server's SQLite checkpointer: LangGraph's AsyncSqliteSaver without its operation lock, so that
operations of many runs share the connection. What it stores must not change."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, TypedDict

import aiosqlite
import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph

from aegra_server.storage.checkpointer import SqliteCheckpointer


class State(TypedDict):
    log: Annotated[list[str], operator.add]


async def _step(state: State) -> dict:
    await asyncio.sleep(0)  # let other runs' operations in between
    return {"log": [f"s{len(state['log'])}"]}


def _graph():
    builder = StateGraph(State)
    builder.add_node("a", _step)
    builder.add_node("b", _step)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
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
