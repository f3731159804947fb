"""The per-run event log every SSE reader follows.

A run appends each event once, already serialised. Readers (the creating request, join streams, reconnects with
Last-Event-ID) replay from any position and then wait for more, so a reader that drops loses nothing. Ids are
positions in the log; `-1` means "from the start".

A thread's log (ThreadLog) holds the events of every run of the thread. Its ids are the same in every process that
shares the database, so a client may resume a thread stream on any of them: a run's events are keyed by when the
run was created and their id in the run (`thread_key`), which orders them as the thread ran them.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# Finished runs whose events stay replayable for late joiners and reconnecting clients.
RETAINED_FINISHED_RUNS = 512
# A thread log counts as watched this long after its last reader stopped following: readers of the thread
# protocol follow in short turns, and a client that reconnects should find the runs of other processes copied in.
WATCH_GRACE_SECONDS = 30.0
ENDED_RUNS_REMEMBERED = 64  # per thread log


# A run's events in its thread's log are keyed `<microseconds of the run's created_at> * KEY_SPAN + <event id>`:
# integers, ordered as the runs of a thread were created (one at a time, under the thread's lock) and as each run
# sent its events; room for a billion events a run.
KEY_SPAN = 10**9
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def thread_key(created_at: datetime) -> int:
    """The key of a run's event 0 in its thread's log."""
    if created_at.tzinfo is None:  # SQLite gives back UTC timestamps without their zone
        created_at = created_at.replace(tzinfo=UTC)
    return (created_at - EPOCH) // timedelta(microseconds=1) * KEY_SPAN


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

    # Logs that receive a copy of every event: the run's thread log, which thread streams follow, once the run's
    # turn in it has come (ThreadLog); there its events are keyed from `thread_key` on.
    mirrors: list[ThreadLog] = field(default_factory=list)
    thread_key: int = 0
    # Where events also go to be persisted for other processes (EventPersister), or None.
    sink: Callable[[Event], None] | None = None

    # Absolute position of events[0]: a trimmed log keeps its ids.
    base: int = 0
    # Bytes of event data held (what the registry's budgets count).
    size: int = 0

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
        self._holds(-sum(len(event.data) for event in self.events[:count]))
        del self.events[:count]
        self.base += count

    def _holds(self, change: int) -> None:
        self.size += change

    def append(self, name: str, data: bytes) -> None:
        event = Event(self.end, name, data)
        self.events.append(event)
        self._holds(len(data))
        self._wake()
        if self.sink is not None:
            self.sink(event)
        for mirror in self.mirrors:
            mirror.add(self.thread_key + event.id, name, data)

    def close(self) -> None:
        self.done = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    @contextmanager
    def followed(self) -> Iterator[None]:
        """A reader follows it meanwhile (see `watched`)."""
        self.followers += 1
        try:
            yield
        finally:
            self.followers -= 1
            self.unfollowed_at = time.monotonic()

    async def follow(self, start: int, heartbeat: float) -> AsyncIterator[Event | None]:
        """Events from position `start` on, live; None when `heartbeat` seconds pass with nothing new."""
        with self.followed():
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


@dataclass
class Tally:
    """Bytes held by the logs a registry keeps (thread logs here, protocol translations in streaming.protocol),
    kept up to date by the logs themselves: summing hundreds of them at every run or request costs more than the
    bookkeeping it serves."""

    bytes: int = 0


@dataclass
class ThreadLog(RunStream):
    """Every run of a thread, one after another, each up to its `run_done`.

    Runs write into it in turns. A run executing here is mirrored into it as it goes, and the runs other processes
    execute are copied in from the database (RunManager._copy_events), which lags: the next run of the thread
    can start here while the tail of the one before, executed elsewhere, is still being copied. Its events wait
    for that run's `run_done`, rather than interleave with its last ones."""

    writer: str | None = None  # the run whose events go in now (or the thread's own event: add_in_turn)
    # The latest runs whose `run_done` it holds: a signal of theirs that comes late starts no second copy.
    ended: OrderedDict[str, None] = field(default_factory=OrderedDict)
    # Runs waiting for their turn, in the order they came, with what lets each one in.
    waiting: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    # Whether it was given the thread's history from the database (RunManager.thread_log_with_history).
    history_read: bool = False
    # The registry's count of what its thread logs hold, kept up to date here (None once the registry let go).
    tally: Tally | None = None

    def _holds(self, change: int) -> None:
        self.size += change
        if self.tally is not None:
            self.tally.bytes += change

    def take_turn(self, run_id: str, start: Callable[[], None]) -> None:
        """Let `run_id` in by calling `start`: now when no run is writing, else after the runs before it."""
        if self.writer is None:
            self.writer = run_id
            start()
        else:
            self.waiting.append((run_id, start))

    async def wait_turn(self, run_id: str) -> None:
        """Until `run_id` may write; it then has the turn until `end_turn(run_id)`."""
        let_in = asyncio.Event()
        self.take_turn(run_id, let_in.set)
        try:
            await let_in.wait()
        except asyncio.CancelledError:
            if let_in.is_set():
                self.end_turn(run_id)
            else:
                self.waiting.remove((run_id, let_in.set))
            raise

    def add(self, key: int, name: str, data: bytes) -> None:
        """An event of one of the thread's runs, under its key (see KEY_SPAN): its id for thread streams."""
        self.events.append(Event(key, name, data))
        self._holds(len(data))
        self._wake()

    def add_in_turn(self, key: int, name: str, data: bytes) -> None:
        """An event of the thread's own (not a run's), after the run writing now, if any, has ended."""
        turn = f"thread event {key}"

        def write() -> None:
            self.add(key, name, data)
            self.end_turn(turn)

        self.take_turn(turn, write)

    def mark_run_done(self, run_id: str, key: int) -> None:
        """The run's end, keyed after its last event."""
        self.add(key, "metadata", run_done(run_id))
        self.ended[run_id] = None
        while len(self.ended) > ENDED_RUNS_REMEMBERED:
            self.ended.popitem(last=False)

    def end_turn(self, run_id: str) -> None:
        """`run_id` has written all it will: the next waiting run goes in."""
        if self.writer != run_id:
            return
        self.writer = None
        if self.waiting:
            self.writer, start = self.waiting.pop(0)
            start()


# Threads whose event log is kept, most recently active first out of the door; and the events kept per thread.
RETAINED_THREAD_LOGS = 512
THREAD_LOG_EVENTS = 10_000
# The most event data kept for replays by finished runs, and by thread logs no one reads or writes now: a model's
# answer is an event per token, and 512 threads of 10,000 events each would be gigabytes. Past it the least
# recently used go first (a thread log with history in the database is read from there again when needed).
RETAINED_FINISHED_BYTES = 128 * 2**20
RETAINED_THREAD_LOG_BYTES = 128 * 2**20


class StreamRegistry:
    """Live run streams, a bounded tail of finished ones, and one log per recently active thread."""

    def __init__(
        self, finished_bytes: int = RETAINED_FINISHED_BYTES, thread_log_bytes: int = RETAINED_THREAD_LOG_BYTES
    ) -> None:
        self._live: dict[str, RunStream] = {}
        self._finished: OrderedDict[str, RunStream] = OrderedDict()
        self._finished_size = 0  # finished runs do not grow: their sizes are added up as they come and go
        self._threads: OrderedDict[str, ThreadLog] = OrderedDict()
        self._threads_tally = Tally()
        self._opened: dict[str, asyncio.Event] = {}
        self._finished_bytes = finished_bytes
        self._thread_log_bytes = thread_log_bytes

    def open(
        self, run_id: str, resumable: bool, thread_id: str | None = None, first_id: int = 0, created_at: datetime = EPOCH
    ) -> RunStream:
        """The log of a run starting here; `first_id` continues the ids of an earlier attempt. Its events go into
        its thread's log too, keyed by the run's `created_at`."""
        stream = RunStream(run_id, resumable, base=first_id, thread_key=thread_key(created_at))
        if thread_id is not None:
            log = self.thread_log(thread_id)
            log.take_turn(run_id, lambda: _mirror_into(stream, log))
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

    def thread_log(self, thread_id: str) -> ThreadLog:
        """The log of every run event on a thread, in order; thread streams always carry ids."""
        log = self._threads.pop(thread_id, None) or ThreadLog(thread_id, resumable=True, tally=self._threads_tally)
        self._threads[thread_id] = log
        while len(self._threads) > RETAINED_THREAD_LOGS:
            self._let_go(next(iter(self._threads)))
        if len(log.events) > THREAD_LOG_EVENTS:
            # Ids stay positions in the full history, so only the oldest events become unreachable.
            log.trim(len(log.events) - THREAD_LOG_EVENTS)
        self._thread_logs_within_budget()
        return log

    def _thread_logs_within_budget(self) -> None:
        """Drop the least recently used thread logs that no run writes and no reader follows until the rest hold
        no more than the budget (those in use stay, whatever they hold)."""
        if self._threads_tally.bytes <= self._thread_log_bytes:
            return
        for thread_id, log in list(self._threads.items()):
            if self._threads_tally.bytes <= self._thread_log_bytes:
                break
            if log.writer is None and not log.waiting and not log.watched:
                self._let_go(thread_id)

    def _let_go(self, thread_id: str) -> None:
        log = self._threads.pop(thread_id)
        self._threads_tally.bytes -= log.size
        log.tally = None  # whoever still holds it (a reader) no longer counts against the registry

    def watched_thread_log(self, thread_id: str) -> ThreadLog | None:
        """The thread's log if a reader follows it (or did a moment ago), else None."""
        log = self._threads.get(thread_id)
        return log if log is not None and log.watched else None

    def get(self, run_id: str) -> RunStream | None:
        return self._live.get(run_id) or self._finished.get(run_id)

    def close(self, run_id: str) -> None:
        stream = self._live.pop(run_id, None)
        if stream is None:
            return
        stream.close()
        for log in stream.mirrors:
            _leave(stream, log)
        stream.mirrors.clear()
        self._finished[run_id] = stream
        self._finished_size += stream.size
        while len(self._finished) > RETAINED_FINISHED_RUNS or (
            self._finished_size > self._finished_bytes and len(self._finished) > 1
        ):
            self._finished_size -= self._finished.popitem(last=False)[1].size
        self._thread_logs_within_budget()


def _mirror_into(stream: RunStream, log: ThreadLog) -> None:
    """A run's turn in its thread's log: what it sent while it waited, then the rest as it comes."""
    for event in stream.events:
        log.add(stream.thread_key + event.id, event.name, event.data)
    if stream.done:  # it ended while it waited
        _leave(stream, log)
    else:
        stream.mirrors.append(log)


def _leave(stream: RunStream, log: ThreadLog) -> None:
    if not stream.handed_over:  # else the process that took the run over ends it (RunManager._copy_events)
        log.mark_run_done(stream.run_id, stream.thread_key + stream.end)
    log.end_turn(stream.run_id)
