"""`state_update` events in thread streams: an edit of a thread's state (POST /threads/{id}/state), as
langgraph-api publishes it, `{"state": <the thread's state>, "thread_id": ...}`, for readers asking for the
`state_update` mode.

The process that made the edit puts it in its thread log; when processes share the database, it also signals the
edit to the others, and each that follows the thread reads the state itself and puts it in its own log, under the
same key (a signal carries no state: Postgres's NOTIFY takes 8000 bytes). Edits are not stored: a thread stream
resumed from the database (RunManager.thread_history) has the runs' events, not the edits'.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aegra_server.runs.stream import thread_key
from aegra_server.serde import dumps
from aegra_server.state import thread_state
from aegra_server.storage.common import NotFound
from aegra_server.storage.database import utcnow

if TYPE_CHECKING:
    from aegra_server.runs.manager import RunManager

log = logging.getLogger("aegra.runs")

CHANNEL = "aegra_state"
EVENT = "state_update"


class StateUpdates:
    def __init__(self, manager: RunManager) -> None:
        self._runs = manager
        self._copies: set[asyncio.Task] = set()

    def start(self) -> None:
        self._runs.bus.listen(CHANNEL, self._on_signal)

    async def stop(self) -> None:
        for task in self._copies:
            task.cancel()
        await asyncio.gather(*self._copies, return_exceptions=True)

    async def announce(self, thread_id: str, state: dict[str, Any]) -> None:
        """The thread's state was edited here and is now `state`."""
        key = thread_key(utcnow())
        thread_log = self._runs.streams.watched_thread_log(thread_id)
        if thread_log is not None:
            thread_log.add_in_turn(key, EVENT, _data(thread_id, state))
        if self._runs.bus.shared:
            await self._runs.bus.notify(CHANNEL, f"{self._runs.instance_id} {thread_id} {key}")

    def _on_signal(self, payload: str) -> None:
        sender, thread_id, key = payload.split(" ")
        if sender == self._runs.instance_id:
            return  # its own edit, in its log already
        thread_log = self._runs.streams.watched_thread_log(thread_id)
        if thread_log is None:
            return
        task = asyncio.get_running_loop().create_task(self._copy(thread_id, int(key), thread_log))
        self._copies.add(task)
        task.add_done_callback(self._copies.discard)

    async def _copy(self, thread_id: str, key: int, thread_log) -> None:
        """Another process edited the thread: its state as this process reads it now, in this process's log."""
        try:
            snapshot = await self._runs.thread_snapshot(await self._runs.repos.threads.get(thread_id))
        except NotFound:
            return  # deleted meanwhile
        except Exception:
            log.exception("reading the state of thread %s for its thread stream failed", thread_id)
            return
        if snapshot is not None:
            thread_log.add_in_turn(key, EVENT, _data(thread_id, thread_state(snapshot)))


def _data(thread_id: str, state: dict[str, Any]) -> bytes:
    return dumps({"state": state, "thread_id": thread_id})
