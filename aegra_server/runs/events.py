"""Run events for readers on other server processes (on Postgres, and with SQLite workers).

The executing process appends events to its in-memory RunStream; EventPersister copies them to `run_events` in
small batches, signalling `aegra_events` after each batch (payload: the run id, a space, its thread id), and
writes an `__end__` row when the run ends.
`follow_persisted` is what a reader on another process uses: it reads the rows from an id on and waits for the
signal, so joining, reconnecting with Last-Event-ID and replaying work on any process; a process where a reader
follows a thread copies that thread's runs into its thread log the same way (RunManager._copy_into_thread_log).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from aegra_server.runs.stream import Event
from aegra_server.storage.connections import connection_lost

if TYPE_CHECKING:
    from aegra_server.runs.manager import RunManager

log = logging.getLogger("aegra.events")

END = "__end__"
FLUSH_DELAY_SECONDS = 0.01  # a batch collects what a burst of events produces before it is written
RETRY_SECONDS = 0.5  # a batch the database could not take is tried again this often until it answers


def signal_of(run_id: str, thread_id: str | None) -> str:
    """The `aegra_events` payload: the run id, and its thread id where known (cancels signal the run alone)."""
    return run_id if thread_id is None else f"{run_id} {thread_id}"


def run_of_signal(payload: str) -> tuple[str, str | None]:
    run_id, _, thread_id = payload.partition(" ")
    return run_id, thread_id or None


class EventPersister:
    def __init__(self, runs_repo, bus) -> None:
        self._repo = runs_repo
        self._bus = bus
        self._pending: dict[str, list[dict]] = defaultdict(list)
        # The id after the last event seen per run: the end marker's id, whatever is still being written.
        self._next_seq: dict[str, int] = {}
        self._thread_of: dict[str, str] = {}
        self._flusher: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._closing = False  # no more retries: the server is stopping
        # The id after the last event written per run: where another process that takes a run over goes on.
        self._written_upto: dict[str, int] = {}
        # Runs another process took over (their event ids clashed): nothing more of theirs is written.
        self._lost: set[str] = set()
        # Runs whose remaining events their end transaction writes (take_rest): not written here any more.
        self._taken: set[str] = set()

    def sink(self, run_id: str, thread_id: str) -> Callable[[Event], None]:
        self._thread_of[run_id] = thread_id

        def add(event: Event) -> None:
            if run_id in self._lost or run_id in self._taken:
                return
            self._pending[run_id].append({"run_id": run_id, "seq": event.id, "event": event.name, "data": event.data})
            self._next_seq[run_id] = event.id + 1
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

        return add

    async def _flush_soon(self, delay: float = FLUSH_DELAY_SECONDS) -> None:
        await asyncio.sleep(delay)
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending, defaultdict(list)
            rows = [row for rows in batch.values() for row in rows]
            if not rows:
                return
            try:
                await self._repo.append_events(rows)
                self._have_written(batch)
            except IntegrityError:
                await self._append_each(batch)
            except Exception as exc:
                if connection_lost(exc) and not self._closing:
                    # Kept, ahead of what came since, for readers elsewhere once the database is back.
                    for run_id, kept in batch.items():
                        self._pending[run_id][:0] = kept
                    self._flusher = asyncio.get_running_loop().create_task(self._flush_soon(RETRY_SECONDS))
                    return
                log.exception("persisting %d run events failed", len(rows))
                return
            for run_id in batch:
                await self._bus.notify("aegra_events", signal_of(run_id, self._thread_of.get(run_id)))

    async def _append_each(self, batch: dict[str, list[dict]]) -> None:
        """A batch refused: for a clash of event ids (a run this process executed while cut off from the database
        was resumed by another process, which wrote those ids first), or for a run deleted in the very moment of
        the write (the insert skips runs already gone). Each run's events are written on their own, so the other
        runs' are not lost with that one's."""
        for run_id, rows in batch.items():
            try:
                await self._repo.append_events(rows)
                self._have_written({run_id: rows})
            except IntegrityError:
                # Its later events would take ids the new holder has yet to write, or belong to no run: none goes
                # out any more.
                self._lost.add(run_id)
                self._pending.pop(run_id, None)
                if await self._repo.exists(run_id):
                    log.warning(
                        "dropped %d events of run %s: another process took it over and wrote its own", len(rows), run_id
                    )

    def _have_written(self, batch: dict[str, list[dict]]) -> None:
        for run_id, rows in batch.items():
            self._written_upto[run_id] = max(self._written_upto.get(run_id, 0), rows[-1]["seq"] + 1)

    def forget(self, run_id: str) -> int | None:
        """Drop what is still to be written of a run another process took over; the id its events go on from
        there (the new holder numbered its own from the first id not written here), None if none was written."""
        self._pending.pop(run_id, None)
        self._next_seq.pop(run_id, None)
        self._thread_of.pop(run_id, None)
        self._lost.discard(run_id)
        self._taken.discard(run_id)
        return self._written_upto.pop(run_id, None)

    async def take_rest(self, run_id: str) -> list[dict]:
        """The run's events not written yet and its end marker, out of the queue: the transaction that stores
        the run's end writes them (RunRepository.finish), so a reader elsewhere who finds the run ended has every
        event, and the end costs one round trip. Taken under the lock: a batch being written now is either in
        or, refused for an outage, back in the queue."""
        async with self._lock:
            rows = self._pending.pop(run_id, [])
            self._taken.add(run_id)
            return [*rows, await self._end_marker(run_id)]

    async def _end_marker(self, run_id: str) -> dict:
        """The row that ends a run's events, after the last one it sent."""
        seq = self._next_seq.pop(run_id, None)
        if seq is None:
            seq = await self._repo.last_event_seq(run_id) + 1
        return {"run_id": run_id, "seq": seq, "event": END, "data": b""}

    async def end(self, run_id: str) -> None:
        """After the run's end is stored: write what is left of its events and the end marker (unless its end
        transaction took them), and tell readers elsewhere."""
        if run_id in self._taken:
            self._taken.discard(run_id)
            await self._bus.notify("aegra_events", signal_of(run_id, self._thread_of.get(run_id)))
        else:
            self._pending[run_id].append(await self._end_marker(run_id))
            await self.flush()
        self._thread_of.pop(run_id, None)
        self._written_upto.pop(run_id, None)
        self._lost.discard(run_id)

    async def close(self) -> None:
        self._closing = True
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.flush()


async def follow_persisted(manager: RunManager, run_id: str, start: int, heartbeat: float) -> AsyncIterator[Event | None]:
    """Events of a run that executes (or executed) on another process, from id `start` on."""
    arrived = asyncio.Event()

    def on_signal(payload: str) -> None:
        if run_of_signal(payload)[0] == run_id:
            arrived.set()

    manager.bus.listen("aegra_events", on_signal)
    position = start
    try:
        while True:
            local = manager.streams.get(run_id)
            if local is not None and not local.handed_over:  # it moved here (resumed by this process)
                async for event in local.follow(position, heartbeat):
                    yield event
                return
            arrived.clear()
            try:
                rows = await manager.repos.runs.read_events(run_id, max(position, 0))
                ended = not rows and await _ended(manager, run_id)
                if ended:  # its last events were stored before its end: read once more (RunManager._record)
                    rows = await manager.repos.runs.read_events(run_id, max(position, 0))
            except Exception as exc:
                if not connection_lost(exc):
                    raise
                # The database is away (a restart): the follower keeps its connection and reads on once it is back.
                yield None
                await asyncio.sleep(heartbeat)
                continue
            for seq, name, data in rows:
                if name == END:
                    return
                yield Event(seq, name, data)
                position = seq + 1
            if ended:
                return
            try:
                await asyncio.wait_for(arrived.wait(), heartbeat)
            except TimeoutError:
                yield None
    finally:
        manager.bus.unlisten("aegra_events", on_signal)


async def _ended(manager: RunManager, run_id: str) -> bool:
    """Whether a run whose events have all been read is over (or gone)."""
    try:
        run = await manager.repos.runs.get(run_id)
    except LookupError:
        return True
    return run["status"] not in ("pending", "running")
