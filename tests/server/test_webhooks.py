"""Webhooks: the finished run is POSTed to a real local receiver; a failing receiver costs the run nothing."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import eventually, human, new_thread


class Receiver:
    """A real HTTP server on loopback that records JSON bodies, answering with a chosen status."""

    def __init__(self, status: int = 200, fail_first: int = 0) -> None:
        self.bodies: list[dict] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                receiver.attempts += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                failing = receiver.attempts <= fail_first
                if not failing:
                    receiver.bodies.append(body)
                self.send_response(503 if failing else status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


async def _received(receiver: Receiver, count: int = 1) -> list[dict]:
    async def check():
        return receiver.bodies if len(receiver.bodies) >= count else None

    return await eventually(check, timeout=15)


async def test_webhook_gets_the_successful_run(client, receiver):
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input=human("hook"), webhook=receiver.url)
    await client.runs.join(thread_id, run["run_id"])
    (body,) = await _received(receiver)
    assert body["run_id"] == run["run_id"] and body["thread_id"] == thread_id
    assert body["status"] == "success"
    assert [m["content"] for m in body["values"]["messages"]] == ["hook", "echo: hook"]


async def test_webhook_gets_the_error(client, receiver):
    run = await client.runs.create(None, "failing", input={}, webhook=receiver.url, on_completion="keep")
    (body,) = await _received(receiver)
    assert body["run_id"] == run["run_id"] and body["status"] == "error"
    assert body["error"]["error"] == "ValueError" and "intentional failure" in body["error"]["message"]


async def test_webhook_is_retried_after_a_5xx():
    flaky = Receiver(fail_first=1)
    try:
        from aegra_server.runs.webhooks import WebhookSender

        sender = WebhookSender(backoff=0.05)
        sender.send(flaky.url, {"run_id": "r1", "status": "success"})
        await sender.close(grace=5)
        assert flaky.attempts == 2
        assert [b["run_id"] for b in flaky.bodies] == ["r1"]
    finally:
        flaky.close()


async def test_dead_receiver_does_not_slow_the_run(client):
    dead = Receiver()
    url = dead.url
    dead.close()  # nothing listens there any more
    thread_id = await new_thread(client)
    started = time.monotonic()
    await client.runs.wait(thread_id, "echo", input=human("fast"), webhook=url)
    assert time.monotonic() - started < 2.0
    assert (await client.threads.get(thread_id))["status"] == "idle"
    await asyncio.sleep(0)  # the delivery keeps retrying in the background; the run is long done
