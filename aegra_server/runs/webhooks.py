"""Run-completion webhooks: POST the finished run to the URL it was created with.

Delivery happens after the run is recorded and never delays it: each webhook is its own task with a timeout per
attempt and a few retries with backoff. A receiver that is down, slow or answers 5xx costs the run nothing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import httpx

from aegra_server.serde import dumps

log = logging.getLogger("aegra.webhooks")

ATTEMPTS = 3
TIMEOUT_SECONDS = 10.0
BACKOFF_SECONDS = 0.5  # doubled after each failed attempt


class WebhookSender:
    def __init__(self, *, timeout: float = TIMEOUT_SECONDS, attempts: int = ATTEMPTS, backoff: float = BACKOFF_SECONDS) -> None:
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._attempts = attempts
        self._backoff = backoff
        self._pending: set[asyncio.Task] = set()

    def send(self, url: str, payload: dict[str, Any]) -> None:
        """Queue one delivery; returns at once."""
        task = asyncio.create_task(self._deliver(url, {**payload, "webhook_sent_at": datetime.now(UTC)}))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        body = dumps(payload)
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._client.post(url, content=body, headers={"Content-Type": "application/json"})
                if response.status_code < 500:
                    if response.status_code >= 400:
                        log.warning("webhook %s refused run %s: HTTP %s", url, payload.get("run_id"), response.status_code)
                    return
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            if attempt < self._attempts:
                await asyncio.sleep(delay)
                delay *= 2
        log.warning("webhook %s for run %s failed after %d attempts: %s", url, payload.get("run_id"), self._attempts, reason)

    async def close(self, grace: float = 5.0) -> None:
        """Give deliveries in flight a moment to finish, then stop."""
        if self._pending:
            await asyncio.wait(self._pending, timeout=grace)
        for task in self._pending:
            task.cancel()
        await self._client.aclose()
