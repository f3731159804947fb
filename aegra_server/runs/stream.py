"""The per-run event log every SSE reader follows.

A run appends each event once, already serialised. Readers (the creating request, join streams, reconnects with
Last-Event-ID) replay from any position and then wait for more, so a reader that drops loses nothing. Ids are
positions in the log; `-1` means "from the start".
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

# Finished runs whose events stay replayable for late joiners and reconnecting clients.
RETAINED_FINISHED_RUNS = 512
# A thread log counts as watched this long after its last reader stopped following: readers of the thread
# protocol follow in short turns, and a client that reconnects should find the runs of other processes copied in.
WATCH_GRACE_SECONDS = 30.0


def run_done(run_id: str) -> bytes:
    """The data of the `metadata` event that ends a run in its thread's log."""
    return b'{"status":"run_done","run_id":"' + run_id.encode() + b'"}'


@dataclass
class Event:
    id: int
    name: str
    data: bytes


@dataclass
class RunStream:
    run_id: str
    resumable: bool = False
    events: list[Event] = field(default_factory=list)
    done: bool = False
    # Closed because another process took the run over (RunManager._let_go): its events go on there, from id
    # `handed_over_at` (the first this process did not get into the database).
    handed_over: bool = False
    handed_over_at: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    # Logs that receive a copy of every event: the run's thread log, which thread streams follow.
    mirrors: list[RunStream] = field(default_factory=list)
    # Where events also go to be persisted for other processes (EventPersister), or None.
    sink: Callable[[Event], None] | None = None

    # Absolute position of events[0]: a trimmed log keeps its ids.
    base: int = 0

    # Readers following now, and when the last one stopped: with several processes, a thread log that is
    # watched gets the events of the thread's runs that other processes execute.
    followers: int = 0
    unfollowed_at: float = float("-inf")

    @property
    def watched(self) -> bool:
        return self.followers > 0 or time.monotonic() - self.unfollowed_at < WATCH_GRACE_SECONDS

    @property
    def end(self) -> int:
        """The id the next event will get."""
        return self.base + len(self.events)

    def trim(self, count: int) -> None:
        del self.events[:count]
        self.base += count

    def append(self, name: str, data: bytes) -> None:
        event = Event(self.end, name, data)
        self.events.append(event)
        self._wake()
        if self.sink is not None:
            self.sink(event)
        for mirror in self.mirrors:
            mirror.append(name, data)

    def close(self) -> None:
        self.done = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self, start: int, heartbeat: float) -> AsyncIterator[Event | None]:
        """Events from position `start` on, live; None when `heartbeat` seconds pass with nothing new."""
        self.followers += 1
        try:
            position = start
            while True:
                position = max(position, self.base)
                while position < self.end:
                    yield self.events[position - self.base]
                    position += 1
                if self.done:
                    return
                waiter = self._changed
                try:
                    await asyncio.wait_for(waiter.wait(), heartbeat)
                except TimeoutError:
                    yield None
        finally:
            self.followers -= 1
            self.unfollowed_at = time.monotonic()


# Threads whose event log is kept, most recently active first out of the door; and the events kept per thread.
RETAINED_THREAD_LOGS = 512
THREAD_LOG_EVENTS = 10_000


class StreamRegistry:
    """Live run streams, a bounded tail of finished ones, and one log per recently active thread."""

    def __init__(self) -> None:
        self._live: dict[str, RunStream] = {}
        self._finished: OrderedDict[str, RunStream] = OrderedDict()
        self._threads: OrderedDict[str, RunStream] = OrderedDict()
        self._opened: dict[str, asyncio.Event] = {}

    def open(self, run_id: str, resumable: bool, thread_id: str | None = None, first_id: int = 0) -> RunStream:
        """The log of a run starting here; `first_id` continues the ids of an earlier attempt."""
        stream = RunStream(run_id, resumable, base=first_id)
        if thread_id is not None:
            stream.mirrors.append(self.thread_log(thread_id))
        self._live[run_id] = stream
        self.wake_waiters(run_id)
        return stream

    def wake_waiters(self, run_id: str) -> None:
        """Release readers waiting for a run that will not open here (it ended elsewhere or never started)."""
        waiter = self._opened.pop(run_id, None)
        if waiter is not None:
            waiter.set()

    def opened(self, run_id: str) -> asyncio.Event:
        """Set when the run's log opens here (or it ends without starting): what readers of a queued run wait on."""
        return self._opened.setdefault(run_id, asyncio.Event())

    def thread_log(self, thread_id: str) -> RunStream:
        """The log of every run event on a thread, in order; thread streams always carry ids."""
        log = self._threads.pop(thread_id, None) or RunStream(thread_id, resumable=True)
        self._threads[thread_id] = log
        while len(self._threads) > RETAINED_THREAD_LOGS:
            self._threads.popitem(last=False)
        if len(log.events) > THREAD_LOG_EVENTS:
            # Ids stay positions in the full history, so only the oldest events become unreachable.
            log.trim(len(log.events) - THREAD_LOG_EVENTS)
        return log

    def watched_thread_log(self, thread_id: str) -> RunStream | None:
        """The thread's log if a reader follows it (or did a moment ago), else None."""
        log = self._threads.get(thread_id)
        return log if log is not None and log.watched else None

    def get(self, run_id: str) -> RunStream | None:
        return self._live.get(run_id) or self._finished.get(run_id)

    def close(self, run_id: str) -> None:
        stream = self._live.pop(run_id, None)
        if stream is None:
            return
        if not stream.handed_over:  # else the process that took the run over ends it (RunManager._copy_events)
            for mirror in stream.mirrors:
                mirror.append("metadata", run_done(run_id))
        stream.mirrors.clear()
        stream.close()
        self._finished[run_id] = stream
        while len(self._finished) > RETAINED_FINISHED_RUNS:
            self._finished.popitem(last=False)
