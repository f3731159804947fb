"""The per-run event log every SSE reader follows.

A run appends each event once, already serialised. Readers (the creating request, join streams, reconnects with
Last-Event-ID) replay from any position and then wait for more, so a reader that drops loses nothing. Ids are
positions in the log; `-1` means "from the start".
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

# Finished runs whose events stay replayable for late joiners and reconnecting clients.
RETAINED_FINISHED_RUNS = 512


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
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def append(self, name: str, data: bytes) -> None:
        self.events.append(Event(len(self.events), name, data))
        self._wake()

    def close(self) -> None:
        self.done = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self, start: int, heartbeat: float) -> AsyncIterator[Event | None]:
        """Events from position `start` on, live; None when `heartbeat` seconds pass with nothing new."""
        position = start
        while True:
            while position < len(self.events):
                yield self.events[position]
                position += 1
            if self.done:
                return
            waiter = self._changed
            try:
                await asyncio.wait_for(waiter.wait(), heartbeat)
            except TimeoutError:
                yield None


class StreamRegistry:
    """Live run streams plus a bounded tail of finished ones."""

    def __init__(self) -> None:
        self._live: dict[str, RunStream] = {}
        self._finished: OrderedDict[str, RunStream] = OrderedDict()

    def open(self, run_id: str, resumable: bool) -> RunStream:
        stream = RunStream(run_id, resumable)
        self._live[run_id] = stream
        return stream

    def get(self, run_id: str) -> RunStream | None:
        return self._live.get(run_id) or self._finished.get(run_id)

    def close(self, run_id: str) -> None:
        stream = self._live.pop(run_id, None)
        if stream is None:
            return
        stream.close()
        self._finished[run_id] = stream
        while len(self._finished) > RETAINED_FINISHED_RUNS:
            self._finished.popitem(last=False)
