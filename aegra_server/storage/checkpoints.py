"""Operations on LangGraph's checkpoint tables that the official savers do not offer for both backends."""

from __future__ import annotations

import asyncio
import json
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


async def delete_run_checkpoints(saver: BaseCheckpointSaver, thread_id: str, run_id: str) -> int:
    """Remove the checkpoints a run wrote, in every namespace of the thread, with their pending writes; how many.
    A run's checkpoints name it in their metadata (the server puts run_id in every run's config metadata).

    Used by DELETE of a run, which takes the run out of its thread's history, as langgraph-api's does.
    """
    conn = getattr(saver, "conn", None)
    if _is_sqlite(saver):
        written_by = "thread_id = ? AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ?"
        async with saver.lock:
            await conn.execute(
                f"DELETE FROM writes WHERE thread_id = ? AND checkpoint_id IN (SELECT checkpoint_id FROM checkpoints WHERE {written_by})",
                (thread_id, thread_id, run_id),
            )
            deleted = await conn.execute(f"DELETE FROM checkpoints WHERE {written_by}", (thread_id, run_id))
            await conn.commit()
        return deleted.rowcount
    if type(saver).__name__ == "AsyncPostgresSaver":
        written_by = "thread_id = %s AND metadata @> %s::jsonb"
        stamp = json.dumps({"run_id": run_id})
        async with saver._cursor() as cur:
            await cur.execute(
                f"DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id IN (SELECT checkpoint_id FROM checkpoints WHERE {written_by})",
                (thread_id, thread_id, stamp),
            )
            await cur.execute(f"DELETE FROM checkpoints WHERE {written_by}", (thread_id, stamp))
            return cur.rowcount
    raise NotImplementedError(f"deleting a run's checkpoints is not supported with {type(saver).__name__}")


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


async def thread_storage(saver: BaseCheckpointSaver, thread_id: str) -> dict[str, Any]:
    """Bytes a thread's checkpoints occupy, per table and per channel (langgraph-api's report).

    `total_bytes` is the sum of the three parts. Postgres keeps each version of a channel's value once, in its own
    table (`checkpoint_blobs`); its sizes are as stored (`pg_column_size`, after compression). LangGraph's SQLite
    saver keeps every channel's value inside each checkpoint, so there a channel's `versions` are the copies the
    checkpoints carry, and `checkpoints.bytes` is what the checkpoints hold besides them.
    """
    if _is_sqlite(saver):
        return await _sqlite_storage(saver, thread_id)
    return await _postgres_storage(saver, thread_id)


def _report(checkpoints: tuple[int, int], by_channel: dict[str, dict[str, int]], writes: tuple[int, int]) -> dict:
    channel_bytes = sum(entry["bytes"] for entry in by_channel.values())
    return {
        "total_bytes": checkpoints[1] + channel_bytes + writes[1],
        "checkpoints": {"count": checkpoints[0], "bytes": checkpoints[1]},
        "channel_values": {
            "count": sum(entry["versions"] for entry in by_channel.values()),
            "bytes": channel_bytes,
            "by_channel": by_channel,
        },
        "pending_writes": {"count": writes[0], "bytes": writes[1]},
    }


async def _sqlite_storage(saver: BaseCheckpointSaver, thread_id: str) -> dict[str, Any]:
    async with saver.lock:
        async with saver.conn.execute(
            "SELECT type, checkpoint, coalesce(length(checkpoint), 0) + coalesce(length(metadata), 0)"
            " FROM checkpoints WHERE thread_id = ?",
            (thread_id,),
        ) as cursor:
            rows = await cursor.fetchall()
        async with saver.conn.execute(
            "SELECT count(*), coalesce(sum(length(value)), 0) FROM writes WHERE thread_id = ?", (thread_id,)
        ) as cursor:
            writes = await cursor.fetchone()
    # The values are measured by serialising each one again as the saver does, off the event loop (a long
    # thread's checkpoints take a while to read back).
    by_channel, inline = await asyncio.to_thread(_inline_values, saver, rows)
    row_bytes = sum(row[2] for row in rows)
    return _report((len(rows), row_bytes - inline), by_channel, (writes[0], writes[1]))


def _inline_values(saver: BaseCheckpointSaver, rows: list) -> tuple[dict[str, dict[str, int]], int]:
    by_channel: dict[str, dict[str, int]] = {}
    for type_, blob, _ in rows:
        for channel, value in saver.serde.loads_typed((type_, blob)).get("channel_values", {}).items():
            entry = by_channel.setdefault(channel, {"versions": 0, "bytes": 0})
            entry["versions"] += 1
            entry["bytes"] += len(saver.serde.dumps_typed(value)[1])
    return dict(sorted(by_channel.items())), sum(entry["bytes"] for entry in by_channel.values())


async def _postgres_storage(saver: BaseCheckpointSaver, thread_id: str) -> dict[str, Any]:
    size = "coalesce(sum(pg_column_size({})), 0)::bigint"
    async with saver._cursor() as cur:
        await cur.execute(
            f"SELECT count(*) AS count, {size.format('checkpoint')} + {size.format('metadata')} AS bytes"
            " FROM checkpoints WHERE thread_id = %s",
            (thread_id,),
        )
        checkpoints = await cur.fetchone()
        await cur.execute(
            f"SELECT channel, count(*) AS count, {size.format('blob')} AS bytes FROM checkpoint_blobs"
            " WHERE thread_id = %s GROUP BY channel ORDER BY channel",
            (thread_id,),
        )
        blobs = await cur.fetchall()
        await cur.execute(
            f"SELECT count(*) AS count, {size.format('blob')} AS bytes FROM checkpoint_writes WHERE thread_id = %s",
            (thread_id,),
        )
        writes = await cur.fetchone()
    by_channel = {row["channel"]: {"versions": row["count"], "bytes": row["bytes"]} for row in blobs}
    return _report((checkpoints["count"], checkpoints["bytes"]), by_channel, (writes["count"], writes["bytes"]))
