"""Deletes threads whose time to live has passed (threads created or updated with `ttl`)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from aegra_server.runs.manager import RunManager
from aegra_server.storage.repositories import Repositories

log = logging.getLogger("aegra.sweeper")


class ThreadSweeper:
    def __init__(self, repos: Repositories, runs: RunManager, interval: float) -> None:
        self.repos = repos
        self.runs = runs
        self.interval = interval
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

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                if swept := await self.sweep():
                    log.info("deleted %d expired thread(s)", swept)
            except Exception:
                log.exception("sweeping expired threads failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
