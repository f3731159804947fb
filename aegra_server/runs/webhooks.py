"""Run-completion webhooks: POST the finished run to the URL it was created with.

Delivery happens after the run is recorded and never delays it: each webhook is its own task with a timeout per
attempt and a few retries with backoff. A receiver that is down, slow or answers 5xx costs the run nothing.
Each attempt checks the URL against the policy (runs/webhook_policy.py) and connects to the address it checked;
aegra.json's `webhooks` adds headers to every delivery and may keep only some of the body's fields.

A relative URL ("/hook", where the policy allows loopback) is delivered to this server's own app in process,
through all its middleware: unlike langgraph-api, which skips authentication for these calls, a route that
needs credentials refuses the delivery (logged), so a client cannot use a webhook to act as nobody.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from aegra_server.config import WebhooksConfig
from aegra_server.runs.webhook_policy import WebhookPolicy, WebhookRefused
from aegra_server.serde import dumps

log = logging.getLogger("aegra.webhooks")

ATTEMPTS = 3
TIMEOUT_SECONDS = 10.0
BACKOFF_SECONDS = 0.5  # doubled after each failed attempt


class WebhookSender:
    def __init__(
        self,
        config: WebhooksConfig | None = None,
        *,
        timeout: float = TIMEOUT_SECONDS,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF_SECONDS,
    ) -> None:
        config = config or WebhooksConfig()
        self.policy = WebhookPolicy(config.policy)
        self._headers = {**config.rendered_headers(), "Content-Type": "application/json"}
        self._fields = set(config.allowed_fields) if config.allowed_fields is not None else None
        self._timeout = timeout
        self._remote: httpx.AsyncClient | None = None  # made at the first delivery (see _client)
        self._attempts = attempts
        self._backoff = backoff
        self._pending: set[asyncio.Task] = set()
        self._local: httpx.AsyncClient | None = None  # for relative URLs, once the app is known

    def deliver_relative_to(self, app: Any) -> None:
        """Relative webhook URLs are routes of this ASGI app (the server's own)."""
        self._local = httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://aegra.local", timeout=self._timeout
        )

    @property
    def _client(self) -> httpx.AsyncClient:
        """The client for deliveries to other hosts, made when first needed: making it loads the TLS trust store
        (~60 ms), a cost every server start (and each `aegra dev` reload) paid whether it sent webhooks or not.
        No redirects: a receiver could otherwise send the delivery on to an address the policy refuses."""
        if self._remote is None:
            self._remote = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        return self._remote

    def send(self, url: str, payload: dict[str, Any]) -> None:
        """Queue one delivery; returns at once."""
        payload = {**payload, "webhook_sent_at": datetime.now(UTC)}
        if self._fields is not None:
            payload = {key: value for key, value in payload.items() if key in self._fields}
        task = asyncio.create_task(self._deliver(url, payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(self, url: str, body: bytes) -> httpx.Response:
        host, address = await self.policy.check(url)
        if not host:  # relative: this server's own route
            if self._local is None:
                raise WebhookRefused("a relative URL needs the server's app, which this sender was not given")
            return await self._local.post(url, content=body, headers=self._headers)
        if address is None:  # a host the policy trusts by name
            return await self._client.post(url, content=body, headers=self._headers)
        # To the address just checked, under the URL's own name (Host header, and TLS's server name).
        parts = urlsplit(url)
        netloc = f"[{address}]" if ":" in address else address
        if parts.port is not None:
            netloc = f"{netloc}:{parts.port}"
        pinned = urlunsplit(parts._replace(netloc=netloc))
        headers = {**self._headers, "Host": parts.netloc.rpartition("@")[2]}
        return await self._client.post(pinned, content=body, headers=headers, extensions={"sni_hostname": host})

    async def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        body = dumps(payload)
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._post(url, body)
                if response.status_code < 500:
                    if response.status_code >= 400:
                        log.warning("webhook %s refused run %s: HTTP %s", url, payload.get("run_id"), response.status_code)
                    return
                reason = f"HTTP {response.status_code}"
            except WebhookRefused as exc:
                log.warning("webhook %s for run %s not sent: %s", url, payload.get("run_id"), exc)
                return
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
        if self._remote is not None:
            await self._remote.aclose()
        if self._local is not None:
            await self._local.aclose()
