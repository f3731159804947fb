"""Deletes what has outlived its time: threads whose time to live has passed (created or updated with `ttl`), and
the stored events of the ended runs of threads idle longer than their retention
(settings.run_events_retention_seconds)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from datetime import datetime, timedelta

from aegra_server.runs.manager import RunManager
from aegra_server.storage.connections import log_failure
from aegra_server.storage.database import utcnow
from aegra_server.storage.repositories import Repositories

log = logging.getLogger("aegra.sweeper")


class Sweeper:
    def __init__(self, repos: Repositories, runs: RunManager, interval: float, events_retention: float) -> None:
        self.repos = repos
        self.runs = runs
        self.interval = interval
        self.events_retention = timedelta(seconds=events_retention)
        # Where the last sweep of run events stopped (the last change of the last thread it took): the next starts
        # there.
        self._events_swept_to: tuple[datetime, str] | None = None
        self._task: asyncio.Task | None = None

    async def sweep(self) -> int:
        """Delete every expired thread now (its runs stopped, its checkpoints gone); returns how many."""
        swept = 0
        while batch := await self.repos.threads.expired():
            for thread_id in batch:
                await self.runs.cancel_thread(thread_id)
                await self.runs.delete_thread_data(thread_id)
                swept += 1
        return swept

    async def sweep_run_events(self) -> int:
        """Delete the stored events of the ended runs of every thread idle longer than the retention; returns of how
        many threads (each once per process while it stays idle: a later sweep starts where this one stopped)."""
        idle_since = utcnow() - self.events_retention
        swept = 0
        while True:
            taken, self._events_swept_to = await self.repos.runs.forget_events(idle_since, self._events_swept_to)
            swept += taken
            if not taken:
                return swept

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                if swept := await self.sweep():
                    log.info("deleted %d expired thread(s)", swept)
                if self.runs.bus.shared:  # run events are stored only where processes share the database
                    await self.sweep_run_events()
            except Exception as exc:  # tried again next time; a database away for a while logs one line each time
                log_failure(log, logging.ERROR, "sweeping failed", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
