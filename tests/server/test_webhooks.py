"""Webhooks: the finished run is POSTed to a real local receiver; a failing receiver costs the run nothing; the
URL policy (aegra.json's `webhooks`, langgraph-api's rules) refuses what the server must not reach, and the
configured headers and fields shape each delivery."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import UnprocessableEntityError

from aegra_server.config import WebhooksConfig, WebhookUrlPolicy
from aegra_server.settings import Settings
from helpers import eventually, human, new_thread
from tests.server.conftest import _ServerThread

GRAPHS = Path(__file__).resolve().parents[1] / "graphs"


class Receiver:
    """A real HTTP server on loopback that records JSON bodies, answering with a chosen status."""

    def __init__(self, status: int = 200, fail_first: int = 0) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                receiver.attempts += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                failing = receiver.attempts <= fail_first
                if not failing:
                    receiver.bodies.append(body)
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
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

        loopback = WebhooksConfig(url=WebhookUrlPolicy(require_https=False, disable_loopback=False))
        sender = WebhookSender(loopback, backoff=0.05)
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


# ---- the URL policy and aegra.json's `webhooks` ------------------------------------------------------------------


@contextmanager
def _server_with(folder: Path, webhooks: dict | None, **sections) -> Iterator[str]:
    """A server of the echo graph whose aegra.json has this `webhooks` section (none: the defaults), and any other
    sections given."""
    config = {"graphs": {"echo": str(GRAPHS / "echo.py") + ":graph"}, **sections}
    if webhooks is not None:
        config["webhooks"] = webhooks
    (folder / "aegra.json").write_text(json.dumps(config))
    server = _ServerThread(Settings(AEGRA_CONFIG=folder / "aegra.json", DATABASE_URL=f"sqlite:///{folder / 'aegra.db'}"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def _refusal(call) -> str:
    with pytest.raises(UnprocessableEntityError) as refused:
        await call
    [error] = refused.value.response.json()["detail"]
    assert error["loc"] == ["body", "webhook"]
    return error["msg"]


async def test_by_default_a_webhook_may_not_reach_this_machine_or_the_platform(tmp_path, receiver):
    with _server_with(tmp_path, None) as url:
        client = get_client(url=url)
        thread_id = (await client.threads.create())["thread_id"]
        message = await _refusal(client.runs.create(thread_id, "echo", input=human("x"), webhook=receiver.url))
        assert "this machine" in message and "disable_loopback" in message
        for target, why in [
            ("http://localhost:9/hook", "this machine"),
            ("http://169.254.169.254/latest/meta-data", "metadata"),  # the cloud's instance credentials
            ("http://metadata.google.internal/", "internal"),
            ("http://[::ffff:127.0.0.1]/", "reserved"),
            ("ftp://example.com/hook", "http or https"),
            ("/hook", "route of this server"),
        ]:
            assert why in await _refusal(client.runs.create(thread_id, "echo", input=human("x"), webhook=target)), target
        assert "this machine" in await _refusal(
            client.crons.create("echo", schedule="* * * * *", input=human("x"), webhook=receiver.url)
        )
        # Nothing was created by the refused requests.
        assert await client.runs.list(thread_id) == []
        assert await client.crons.search() == []
        await client.runs.wait(thread_id, "echo", input=human("no hook"))  # a run without a webhook is unaffected
    assert receiver.bodies == []


async def test_configured_headers_fields_and_domains(tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("LG_WEBHOOK_TEST_TOKEN", "s3cret")
    webhooks = {
        "url": {"require_https": False, "disable_loopback": False, "allowed_domains": ["127.0.0.1"]},
        "headers": {"Authorization": "Bearer ${{ env.LG_WEBHOOK_TEST_TOKEN }}", "X-Source": "aegra"},
        "allowed_fields": ["run_id", "status", "values", "run_started_at", "run_ended_at"],
    }
    with _server_with(tmp_path, webhooks) as url:
        client = get_client(url=url)
        thread_id = (await client.threads.create())["thread_id"]
        run = await client.runs.create(thread_id, "echo", input=human("hook"), webhook=receiver.url)
        (body,) = await _received(receiver)
        assert set(body) == {"run_id", "status", "values", "run_started_at", "run_ended_at"}
        assert body["run_id"] == run["run_id"] and body["status"] == "success"
        assert body["run_started_at"] <= body["run_ended_at"]
        (headers,) = receiver.headers
        assert headers["authorization"] == "Bearer s3cret" and headers["x-source"] == "aegra"
        assert headers["host"] == receiver.url.split("/")[2]
        other_name = receiver.url.replace("127.0.0.1", "localhost")
        assert "allowed_domains" in await _refusal(client.runs.create(thread_id, "echo", webhook=other_name))


RECORDING_APP = """
import json
from pathlib import Path
from fastapi import FastAPI, Request

app = FastAPI()

@app.post("/hooks/run")
async def record(request: Request) -> dict:
    Path(__file__).with_name("received.json").write_bytes(await request.body())
    return {"ok": True}
"""


async def test_a_relative_webhook_reaches_the_servers_own_route_where_loopback_is_allowed(tmp_path):
    (tmp_path / "hooks_app.py").write_text(RECORDING_APP)
    received = tmp_path / "received.json"
    loopback = {"url": {"disable_loopback": False}}
    with _server_with(tmp_path, loopback, http={"app": str(tmp_path / "hooks_app.py") + ":app"}) as url:
        client = get_client(url=url)
        thread_id = (await client.threads.create())["thread_id"]
        run = await client.runs.create(thread_id, "echo", input=human("inside"), webhook="/hooks/run")

        async def delivered():
            return json.loads(received.read_text()) if received.exists() else None

        body = await eventually(delivered, timeout=15)
        assert body["run_id"] == run["run_id"] and body["status"] == "success"
        assert [m["content"] for m in body["values"]["messages"]] == ["inside", "echo: inside"]
        # No scheme is not "relative": "//host/path" would leave the server.
        assert "no scheme" in await _refusal(client.runs.create(thread_id, "echo", webhook="//example.com/x"))


async def test_a_relative_webhook_gets_no_credentials_on_a_server_with_auth(tmp_path, caplog):
    """langgraph-api calls these routes as nobody, past its auth (GHSA-q3v5-r5ch-p57j); here the delivery goes
    through the server's auth like any request, so a webhook cannot act on the protocol's routes."""
    loopback = {"url": {"disable_loopback": False}}
    auth = {"path": str(GRAPHS / "auth_owner.py") + ":auth"}
    with _server_with(tmp_path, loopback, auth=auth) as url:
        alice = get_client(url=url, headers={"Authorization": "Bearer alice"})
        thread_id = (await alice.threads.create())["thread_id"]
        await alice.runs.wait(thread_id, "echo", input=human("x"), webhook="/threads")

        async def refused():
            return [r for r in caplog.records if "/threads" in r.getMessage() and "HTTP 401" in r.getMessage()] or None

        await eventually(refused, timeout=15)
        threads = await alice.threads.search(limit=100)
        assert [t["thread_id"] for t in threads] == [thread_id]  # the webhook created no thread
