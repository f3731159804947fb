"""Small helpers for the server tests: unique tags, polling, SSE parsing at the byte level."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid5

from aegra_server.storage.database import Database
from aegra_server.storage.repositories import Repositories
from aegra_server.storage.urls import parse_database_url

GRAPH_NAMESPACE = UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
TERMINAL = {"success", "error", "interrupted", "timeout"}


def tag() -> str:
    """A value no other test uses, for metadata filters on the shared server."""
    return uuid.uuid4().hex


def default_assistant_id(graph_id: str) -> str:
    return str(uuid5(GRAPH_NAMESPACE, graph_id))


def human(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def texts(values: dict[str, Any]) -> list[str]:
    return [m["content"] for m in values.get("messages", [])]


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fail with its last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")


async def wait_status(client, thread_id: str, run_id: str, wanted: set[str] | str, timeout: float = 15.0) -> dict:
    wanted = {wanted} if isinstance(wanted, str) else wanted

    async def check():
        run = await client.runs.get(thread_id, run_id)
        return run if run["status"] in wanted else None

    return await eventually(check, timeout)


async def new_thread(client, **kwargs) -> str:
    return (await client.threads.create(**kwargs))["thread_id"]


@dataclass
class SSE:
    """One server-sent event as it was on the wire."""

    event: str
    data: Any
    id: str | None
    raw: bytes


@dataclass
class SSEBody:
    events: list[SSE]
    comments: list[bytes]


def parse_sse(body: bytes) -> SSEBody:
    """Split a complete text/event-stream body, insisting on langgraph-api's CRLF framing.

    Each block is `event: <name>\\r\\ndata: <one JSON line>\\r\\n[id: <id>\\r\\n]\\r\\n`; comments are `: ...`.
    """
    assert b"\n" not in body.replace(b"\r\n", b""), "bare LF in an SSE body framed with CRLF"
    events: list[SSE] = []
    comments: list[bytes] = []
    assert body.endswith(b"\r\n\r\n") or not body, f"SSE body does not end with a blank line: {body[-40:]!r}"
    for block in body.split(b"\r\n\r\n"):
        if not block:
            continue
        lines = block.split(b"\r\n")
        if all(line.startswith(b":") for line in lines):
            comments.extend(lines)
            continue
        fields: dict[bytes, bytes] = {}
        for line in lines:
            name, sep, value = line.partition(b": ")
            assert sep, f"malformed SSE line {line!r}"
            assert name not in fields, f"repeated field {name!r} in one event"
            fields[name] = value
        assert list(fields)[:2] == [b"event", b"data"], f"event and data must come first: {block!r}"
        assert set(fields) <= {b"event", b"data", b"id"}, block
        events.append(
            SSE(
                event=fields[b"event"].decode(),
                data=json.loads(fields[b"data"]),
                id=fields[b"id"].decode() if b"id" in fields else None,
                raw=block,
            )
        )
    return SSEBody(events, comments)


def names(parts) -> list[str]:
    """Event names of SDK StreamParts or SSE objects, in order."""
    return [p.event for p in parts]


async def leftover_assistant(database_url: str, name: str) -> dict:
    """An assistant of a graph this server does not serve, as one an earlier aegra.json made (written through
    our storage, on the server's database)."""
    db = Database(parse_database_url(database_url))
    try:
        return await Repositories.build(db).assistants.create(graph_id="removed_graph", name=name)
    finally:
        await db.close()
