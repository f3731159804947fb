"""Clients at once on the same threads and assistants.

The soak: many clients on a few threads, doing everything that touches a thread's runs and checkpoints in a
random order, while others make, edit, roll back and delete the assistants some of those runs use. The server
must answer each with a 2xx or a 4xx it means (a 404 for what another client deleted, a 409 for a busy thread),
log no error, hold nothing per run once all have ended, and leave every thread in a state its runs explain.
Timing decides the interleavings, so it cannot name the one it needs; it (and a longer version of it run by
hand) found bugs that tests of each operation alone did not: SQLite refusing checkpoint writes during a history
read; on Postgres, two creations of one missing thread or assistant, two edits of one assistant, and the end of a
run whose thread was deleted meanwhile. The tests after it pin those races down one at a time.

By hand, longer, against running servers that serve tests/graphs/aegra.json (two on one Postgres, say):

    .venv/bin/python tests/server/test_concurrent_clients.py http://127.0.0.1:2026 http://127.0.0.1:2027 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import time
import uuid
from collections.abc import Awaitable
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client

from aegra_server.storage.urls import parse_database_url
from helpers import TERMINAL

CLIENTS = 10
SECONDS = 6.0
EXPECTED_REFUSALS = {404, 409}
# How a run's stream ends when another client deletes its thread meanwhile.
RUN_DELETED = {"error": "HTTPException", "message": "404: Run not found (its thread was deleted)"}


class Soak:
    def __init__(self, clients: list, seed: int) -> None:
        self.clients = clients  # one per server: several servers on one database serve the same threads
        self.client = clients[0]
        self.random = random.Random(seed)
        self.threads = [str(uuid.uuid4()) for _ in range(4)]
        self.assistants = [str(uuid.uuid4()) for _ in range(2)]
        self.failures: list[str] = []

    def _run_kwargs(self) -> dict:
        return {
            "input": {"steps": self.random.randint(1, 3), "delay": self.random.choice([0, 0.01, 0.05])},
            "multitask_strategy": self.random.choice(["reject", "interrupt", "rollback", "enqueue"]),
            "if_not_exists": "create",
        }

    async def _some_run(self, thread_id: str) -> str | None:
        runs = await self.client.runs.list(thread_id, limit=3)
        return self.random.choice(runs)["run_id"] if runs else None

    async def one(self) -> None:
        c, thread_id = self.random.choice(self.clients), self.random.choice(self.threads)
        op = self.random.choice(
            ["create", "create", "wait", "stream", "cancel", "join", "state", "update", "history", "copy",
             "delete_thread", "delete_run", "stateless", "assistant", "assistant", "run_assistant"]
        )
        assistant_id = self.random.choice(self.assistants)
        if op == "create":
            await c.runs.create(thread_id, "slow", **self._run_kwargs())
        elif op == "wait":
            result = await c.runs.wait(thread_id, "slow", **self._run_kwargs())
            if isinstance(result, dict) and "__error__" in result:
                self.failures.append(f"wait: {result['__error__']}")
        elif op == "stream":
            async for part in c.runs.stream(thread_id, "slow", stream_mode=["values", "updates"], **self._run_kwargs()):
                if part.event == "error" and part.data != RUN_DELETED:
                    self.failures.append(f"stream: {part.data}")
        elif op == "cancel" and (run_id := await self._some_run(thread_id)):
            action = self.random.choice(["interrupt", "rollback"])
            await c.runs.cancel(thread_id, run_id, wait=self.random.random() < 0.5, action=action)
        elif op == "join" and (run_id := await self._some_run(thread_id)):
            await c.runs.join(thread_id, run_id)
        elif op == "state":
            await c.threads.get_state(thread_id)
        elif op == "update":
            await c.threads.update_state(thread_id, {"label": "edited"})
        elif op == "history":
            await c.threads.get_history(thread_id, limit=self.random.choice([1, 5, 100]))
        elif op == "copy":
            await c.threads.delete((await c.threads.copy(thread_id))["thread_id"])
        elif op == "delete_thread":
            await c.threads.delete(thread_id)
        elif op == "delete_run":
            ended = [r for r in await c.runs.list(thread_id, limit=5) if r["status"] in TERMINAL]
            if ended:
                await c.runs.delete(thread_id, self.random.choice(ended)["run_id"])
        elif op == "assistant":  # made, edited, rolled back and deleted by clients at once
            change = self.random.choice(["create", "update", "set_latest", "delete"])
            if change == "create":
                await c.assistants.create("slow", assistant_id=assistant_id, if_exists="do_nothing")
            elif change == "update":
                delay = self.random.choice([0, 0.01])
                await c.assistants.update(assistant_id, config={"configurable": {"delay": delay}})
            elif change == "set_latest":
                await c.assistants.set_latest(assistant_id, self.random.randint(1, 3))
            else:
                await c.assistants.delete(assistant_id)
        elif op == "run_assistant":
            await c.runs.create(thread_id, assistant_id, **self._run_kwargs())
        elif op == "stateless":
            result = await c.runs.wait(None, "slow", input={"steps": 1, "delay": 0})
            if isinstance(result, dict) and "__error__" in result:
                self.failures.append(f"stateless: {result['__error__']}")

    async def worker(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                await self.one()
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                # A thread another client has just run (no graph yet to edit) is a 400 that names the fix.
                if status not in EXPECTED_REFUSALS and "has no graph yet" not in exc.response.text:
                    self.failures.append(f"{exc.request.method} {exc.request.url.path}: {status} {exc.response.text}")
            except Exception as exc:  # the SDK raises a run's error (`wait`) as a plain Exception
                self.failures.append(repr(exc))

    async def settled(self, timeout: float = 30.0) -> list[str]:
        """What is wrong once every run has ended: a run left active, a thread busy with nothing running, or a
        run that ended in error (the graph never raises)."""
        deadline = time.monotonic() + timeout
        while True:
            wrong = []
            for thread_id in self.threads:
                try:
                    thread = await self.client.threads.get(thread_id)
                except httpx.HTTPStatusError as exc:
                    if exc.response.status_code == 404:
                        continue  # deleted last
                    raise
                runs = await self.client.runs.list(thread_id, limit=100)
                active = [r["run_id"] for r in runs if r["status"] not in TERMINAL]
                if active:
                    wrong.append(f"thread {thread_id}: runs {active} still active")
                elif thread["status"] == "busy":
                    wrong.append(f"thread {thread_id}: busy with no run active")
                wrong += [f"run {r['run_id']} ended in error" for r in runs if r["status"] == "error"]
            if not wrong or time.monotonic() > deadline:
                return wrong
            await asyncio.sleep(0.5)


def _aegra_logs(caplog, level: int) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.name.startswith("aegra") and r.levelno >= level]


def _held_for_runs(server) -> dict[str, int]:
    """What the run manager keeps per run in flight: all of it must go when the runs have ended, or a long-lived
    server grows with every run (a white-box look at the server the tests run in-process)."""
    manager = server.server.config.app.state.services.runs
    held = {
        "jobs": manager._jobs, "end waiters": manager._ended, "start waiters": manager._awaiting_start,
        "copies": manager._copies, "cancellations": manager._detached, "live streams": manager.streams._live,
    }
    return {name: len(items) for name, items in held.items() if items}


async def test_concurrent_clients_on_few_threads_leave_nothing_wrong(client, server, caplog):
    soak = Soak([client], seed=7)
    with caplog.at_level(logging.WARNING, logger="aegra"):
        deadline = time.monotonic() + SECONDS
        await asyncio.gather(*(soak.worker(deadline) for _ in range(CLIENTS)))
        wrong = await soak.settled()
    logged = _aegra_logs(caplog, logging.ERROR)
    assert not soak.failures, "\n".join(soak.failures)
    assert not logged, "\n".join(logged)
    assert not wrong, "\n".join(wrong)
    assert _held_for_runs(server) == {}


@pytest.fixture
def other_transaction(backend: str, database_url: str):
    """A transaction of another client on the server's database, for it to race with (Postgres: SQLite's single
    writer never lets two writes overlap)."""
    if backend != "postgres":
        pytest.skip("SQLite runs one write at a time")
    with psycopg.connect(parse_database_url(database_url).conninfo) as conn:
        yield conn


def _insert_thread(conn: psycopg.Connection, thread_id: str) -> None:
    """A thread as the server creates one, inserted and not committed yet."""
    conn.execute(
        "INSERT INTO threads (thread_id, status, metadata, config, interrupts, created_at, updated_at)"
        " VALUES (%s, 'idle', '{}', '{}', '{}', now(), now())",
        (thread_id,),
    )


async def _after_their_commit(other_transaction: psycopg.Connection, request: Awaitable) -> Any:
    """Send `request`, see that it waits for the other transaction, commit that, and return what the request
    gives: its result, or the status code it was refused with."""
    task = asyncio.ensure_future(request)
    await asyncio.sleep(0.5)
    assert not task.done(), "it should wait for the other transaction"
    other_transaction.commit()
    try:
        return await asyncio.wait_for(task, 30)
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code


async def test_a_run_that_creates_its_thread_while_another_creation_of_it_commits_joins_that_thread(
    client, other_transaction
):
    """Both found the thread missing; the second waits for the first's insert, then runs on the thread it made
    (it failed with a 500: a duplicate key)."""
    thread_id = str(uuid.uuid4())
    _insert_thread(other_transaction, thread_id)
    run = client.runs.wait(thread_id, "slow", input={"steps": 1, "delay": 0}, if_not_exists="create")
    assert (await _after_their_commit(other_transaction, run))["log"] == ["run:1"]
    assert (await client.threads.get(thread_id))["status"] == "idle"


@pytest.mark.parametrize("if_exists", ["raise", "do_nothing"])
async def test_creating_a_thread_another_client_is_creating_answers_as_if_it_had_been_there(
    client, other_transaction, if_exists
):
    """409 with `raise`, the other's thread with `do_nothing` (both were a 500: a duplicate key)."""
    thread_id = str(uuid.uuid4())
    _insert_thread(other_transaction, thread_id)
    create = client.threads.create(thread_id=thread_id, if_exists=if_exists)
    answer = await _after_their_commit(other_transaction, create)
    assert answer == 409 if if_exists == "raise" else answer["thread_id"] == thread_id


async def test_a_run_whose_thread_is_deleted_as_it_ends_ends_quietly(client, other_transaction, caplog):
    """Its events have no run row left to belong to: not written, and nothing logged (on Postgres their insert broke
    a foreign key: the run's end was logged as a failure, and its events as dropped because "another process took
    it over")."""
    thread_id = (await client.threads.create())["thread_id"]
    parts = client.runs.stream(thread_id, "slow", input={"steps": 2, "delay": 0.3}, stream_mode="values")
    with caplog.at_level(logging.WARNING, logger="aegra"):
        assert (await anext(parts)).event == "metadata"  # running
        other_transaction.execute("DELETE FROM threads WHERE thread_id = %s", (thread_id,))  # its runs go with it
        other_transaction.commit()
        rest = [part.event async for part in parts]  # until the run's end
    assert rest[-1] == "values"
    logged = _aegra_logs(caplog, logging.WARNING)
    assert not logged, "\n".join(logged)


@pytest.mark.parametrize("if_exists", ["raise", "do_nothing"])
async def test_creating_an_assistant_another_client_is_creating_answers_as_if_it_had_been_there(
    client, other_transaction, if_exists
):
    """Two services starting at once, each making sure of the same assistant: 409 with `raise`, the other's
    assistant with `do_nothing` (both were a 500: a duplicate key)."""
    assistant_id = str(uuid.uuid4())
    other_transaction.execute(
        "INSERT INTO assistants (assistant_id, graph_id, name, config, context, metadata, version, created_at,"
        " updated_at) VALUES (%s, 'slow', 'theirs', '{}', '{}', '{}', 1, now(), now())",
        (assistant_id,),
    )
    create = client.assistants.create("slow", assistant_id=assistant_id, name="ours", if_exists=if_exists)
    answer = await _after_their_commit(other_transaction, create)
    assert answer == 409 if if_exists == "raise" else answer["name"] == "theirs"


async def test_an_assistant_edited_by_two_clients_at_once_gets_a_version_from_each(client, other_transaction):
    """The second edit waits for the first and takes the next version (it failed with a 500: both took the same
    version number)."""
    assistant = await client.assistants.create("slow", name="v1")
    assistant_id = assistant["assistant_id"]
    other_transaction.execute(  # another client's edit, half done: the row changed, version 2 added
        "UPDATE assistants SET name = 'v2', version = 2 WHERE assistant_id = %s", (assistant_id,)
    )
    other_transaction.execute(
        "INSERT INTO assistant_versions (assistant_id, version, graph_id, name, config, context, metadata, created_at)"
        " VALUES (%s, 2, 'slow', 'v2', '{}', '{}', '{}', now())",
        (assistant_id,),
    )
    edit = client.assistants.update(assistant_id, name="v3")
    assert (await _after_their_commit(other_transaction, edit))["version"] == 3
    assert [v["name"] for v in await client.assistants.get_versions(assistant_id)] == ["v3", "v2", "v1"]


async def test_choosing_the_version_of_an_assistant_another_client_is_deleting_is_a_404(client, other_transaction):
    """Not a 500 (the version was read before the delete committed, the assistant after)."""
    assistant = await client.assistants.create("slow", name="v1")
    assistant_id = assistant["assistant_id"]
    await client.assistants.update(assistant_id, name="v2")
    other_transaction.execute("DELETE FROM assistants WHERE assistant_id = %s", (assistant_id,))
    assert await _after_their_commit(other_transaction, client.assistants.set_latest(assistant_id, 1)) == 404


def main() -> None:
    parser = argparse.ArgumentParser(description="Soak running servers that serve tests/graphs/aegra.json.")
    parser.add_argument("urls", nargs="+", help="one server, or several on one database")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    async def soak() -> int:
        soak = Soak([get_client(url=url, timeout=60) for url in args.urls], args.seed)
        deadline = time.monotonic() + args.seconds
        await asyncio.gather(*(soak.worker(deadline) for _ in range(args.clients)))
        found = soak.failures + await soak.settled()
        print("\n".join(found) or f"nothing wrong after {args.seconds:g} s of {args.clients} clients")
        return 1 if found else 0

    sys.exit(asyncio.run(soak()))


if __name__ == "__main__":
    main()
