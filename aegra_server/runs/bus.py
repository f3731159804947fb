"""Signals between the server processes that share one database.

- `wake`: there is work to claim (a run was created or a thread's run finished).
- `cancel`: payload "run_id:action", for the process that holds the run.
- `events`: payload run_id, new events of that run were persisted (or it ended).

One process (SQLite) delivers them in memory. On Postgres they travel as LISTEN/NOTIFY on one dedicated
connection per process, and every process, the sender included, receives them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from contextlib import suppress

log = logging.getLogger("aegra.bus")

CHANNELS = ("aegra_wake", "aegra_cancel", "aegra_events")
Listener = Callable[[str], None]


class LocalBus:
    """In-process delivery: enough when one server process owns the database."""

    shared = False

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = defaultdict(list)

    def listen(self, channel: str, listener: Listener) -> None:
        self._listeners[channel].append(listener)

    def unlisten(self, channel: str, listener: Listener) -> None:
        with suppress(ValueError):
            self._listeners[channel].remove(listener)

    def _deliver(self, channel: str, payload: str) -> None:
        for listener in list(self._listeners[channel]):
            try:
                listener(payload)
            except Exception:  # one broken listener must not starve the others
                log.exception("listener on %s failed", channel)

    async def notify(self, channel: str, payload: str = "") -> None:
        self._deliver(channel, payload)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class PostgresBus(LocalBus):
    """LISTEN/NOTIFY; reconnects if the listening connection drops (missed signals are covered by polling)."""

    shared = True

    def __init__(self, conninfo: str) -> None:
        super().__init__()
        self._conninfo = conninfo
        self._task: asyncio.Task | None = None
        self._sender = None
        self._send_lock = asyncio.Lock()

    async def start(self) -> None:
        import psycopg

        self._sender = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._listen(ready))
        await asyncio.wait_for(ready.wait(), 30)

    async def _listen(self, ready: asyncio.Event) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
                    for channel in CHANNELS:
                        await conn.execute(f"LISTEN {channel}")
                    ready.set()
                    async for note in conn.notifies():
                        self._deliver(note.channel, note.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("lost the LISTEN connection; reconnecting", exc_info=True)
                await asyncio.sleep(1)

    async def notify(self, channel: str, payload: str = "") -> None:
        async with self._send_lock:
            await self._sender.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self._sender is not None:
            await self._sender.close()
