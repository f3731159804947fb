"""Operations on LangGraph's checkpoint tables that the official savers do not offer for both backends."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver


def _is_sqlite(saver: BaseCheckpointSaver) -> bool:
    """LangGraph's AsyncSqliteSaver, or the server's subclass of it (storage.checkpointer)."""
    return any(cls.__name__ == "AsyncSqliteSaver" for cls in type(saver).__mro__)


async def copy_thread(saver: BaseCheckpointSaver, source: str, target: str) -> None:
    """Copy every checkpoint (all namespaces) and pending write of `source` to `target`, oldest first."""
    tuples = [t async for t in saver.alist({"configurable": {"thread_id": source}})]
    for item in reversed(tuples):
        conf = item.config["configurable"]
        parent = {"configurable": {"thread_id": target, "checkpoint_ns": conf.get("checkpoint_ns", "")}}
        if item.parent_config:
            parent["configurable"]["checkpoint_id"] = item.parent_config["configurable"]["checkpoint_id"]
        checkpoint = item.checkpoint
        saved = await saver.aput(
            parent, checkpoint, {**item.metadata, "thread_id": target}, dict(checkpoint.get("channel_versions", {}))
        )
        writes_by_task: dict[tuple[str, str], list[tuple[str, Any]]] = {}
        for task_id, channel, value in item.pending_writes or []:
            writes_by_task.setdefault((task_id, ""), []).append((channel, value))
        for (task_id, _), writes in writes_by_task.items():
            await saver.aput_writes(saved, writes, task_id)


async def delete_after(saver: BaseCheckpointSaver, thread_id: str, marker: str) -> None:
    """Remove the checkpoints of a thread newer than `marker` (a checkpoint id; they are time-ordered uuid6).

    Used by rollback: the rolled-back run leaves no trace in the thread's history.
    """
    conn = getattr(saver, "conn", None)
    if _is_sqlite(saver):
        async with saver.lock:
            await conn.execute("DELETE FROM writes WHERE thread_id = ? AND checkpoint_id > ?", (thread_id, marker))
            await conn.execute("DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id > ?", (thread_id, marker))
            await conn.commit()
        return
    if type(saver).__name__ == "AsyncPostgresSaver":
        async with saver._cursor() as cur:
            await cur.execute(
                "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id > %s", (thread_id, marker)
            )
            await cur.execute("DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_id > %s", (thread_id, marker))
        return
    raise NotImplementedError(f"rollback is not supported with {type(saver).__name__}")


async def keep_latest(saver: BaseCheckpointSaver, thread_id: str) -> None:
    """Drop every checkpoint of a thread but the newest of each namespace (threads.prune keep_latest)."""
    if _is_sqlite(saver):
        newest = "SELECT MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ? GROUP BY checkpoint_ns"
        async with saver.lock:
            await saver.conn.execute(
                f"DELETE FROM writes WHERE thread_id = ? AND checkpoint_id NOT IN ({newest})", (thread_id, thread_id)
            )
            await saver.conn.execute(
                f"DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id NOT IN ({newest})", (thread_id, thread_id)
            )
            await saver.conn.commit()
        return
    await saver.aprune([thread_id], strategy="keep_latest")
