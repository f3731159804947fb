"""A Postgres restart under a running server: connections drop, new ones are refused for a while, then the
database is back. Runs in flight lose an attempt, not the run."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.postgres import fresh_database, url_for_database
from tests.scaleout.instances import LEASE_SECONDS
from tests.scaleout.test_instances import TERMINAL, assert_one_history, sdk, wait_status, wait_steps

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(request, tmp_path: Path) -> Iterator[str]:  # Postgres only: SQLite has no server to lose
    with fresh_database(request.getfixturevalue("pg_server"), prefix="aegra_outage") as url:
        yield url


@contextlib.contextmanager
def _refused(
    database_url: str, refuse: sql.Composable, allow: sql.Composable, sessions: str, of: str
) -> Iterator[None]:
    """For the block, `refuse` new connections and drop the sessions whose `sessions` column is `of`; `allow` after."""
    with psycopg.connect(database_url, dbname="postgres", autocommit=True) as admin:
        admin.execute(refuse)
        admin.execute(sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {} = %s").format(
            sql.Identifier(sessions)), (of,))
        try:
            yield
        finally:
            admin.execute(allow)


def outage(database_url: str) -> contextlib.AbstractContextManager[None]:
    """The database goes away for the block: every connection to it is dropped and new ones are refused (as
    while Postgres restarts); it takes connections again when the block ends."""
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    database = sql.Identifier(name)
    return _refused(database_url, sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(database),
                    sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(database), "datname", name)


async def test_a_run_survives_a_database_restart_each_step_once(instances, database_url):
    server = instances("a")
    client = sdk(server)
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "slow", input={"steps": 6, "delay": 0.4, "label": "r"})
    events: list[tuple[str, object]] = []

    async def follow() -> None:
        async for part in client.runs.join_stream(thread_id, run["run_id"]):
            events.append((part.event, part.data))

    following = asyncio.create_task(follow())
    await wait_steps(client, thread_id, 2)
    with outage(database_url):
        await asyncio.sleep(2)
    final = await wait_status(client, thread_id, run["run_id"], TERMINAL, timeout=60)
    await asyncio.wait_for(following, 30)
    assert final["status"] == "success", (final, server.log_path.read_text()[-3000:])
    assert (await client.threads.get_state(thread_id))["values"]["log"] == [f"r:{i}" for i in range(1, 7)]
    assert (await client.threads.get(thread_id))["status"] == "idle"
    # The follower saw the run to its end, without an error: the failed attempt was not the run's end.
    assert not [data for event, data in events if event == "error"], events
    assert [data for event, data in events if event == "values"][-1]["log"] == [f"r:{i}" for i in range(1, 7)]
    # An outage is told in one line per failed step, not in tracebacks: it says nothing about the code.
    assert "Traceback" not in server.log_path.read_text()


async def test_requests_while_the_database_is_away_are_told_to_come_again(instances, database_url):
    server = instances("a")
    client = sdk(server)
    await client.threads.create()  # connections are open and pooled
    with outage(database_url):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            away = await http.post("/threads", json={})
    assert away.status_code == 503, away.text
    assert away.headers["Retry-After"] == "1"
    assert "database" in away.json()["detail"]
    assert (await client.threads.create())["thread_id"]  # and once it is back, served again


def _follow_on(clients: dict, thread_id: str, run_id: str) -> dict[str, asyncio.Task]:
    """A follower of the run, from its first event, on each instance: name → task giving (event, data) pairs."""

    async def follow(client) -> list[tuple[str, object]]:
        return [(part.event, part.data) async for part in client.runs.join_stream(thread_id, run_id, last_event_id="-1")]

    return {name: asyncio.create_task(follow(client)) for name, client in clients.items()}


async def _followed(following: dict[str, asyncio.Task]) -> dict[str, list[tuple[str, object]]]:
    await asyncio.wait_for(asyncio.gather(*following.values()), 30)
    return {name: task.result() for name, task in following.items()}


def _assert_seen_to_the_end(seen: dict[str, list[tuple[str, object]]], log: list[str]) -> None:
    """Every follower saw the run to its last step, without an error event (an outage is not the run's error)."""
    for name, events in seen.items():
        assert not [data for event, data in events if event == "error"], (name, events)
        assert [data for event, data in events if event == "values"][-1]["log"] == log, (name, events)


async def test_an_outage_longer_than_the_lease_ends_the_run_once_on_either_instance(instances, database_url):
    """While the database is away for longer than a lease, the run's lease runs out: when it is back, either the
    instance that executed the run goes on with it or the other one resumes it — never both, never an error from
    the outage itself — and followers on both instances see the run to its end."""
    a, b = instances("a"), instances("b")
    on_a, on_b = sdk(a), sdk(b)
    thread_id = (await on_a.threads.create())["thread_id"]
    run = await on_a.runs.create(thread_id, "slow", input={"steps": 6, "delay": 0.4, "label": "r"})
    await wait_status(on_a, thread_id, run["run_id"], "running")
    following = _follow_on({"a": on_a, "b": on_b}, thread_id, run["run_id"])
    await wait_steps(on_a, thread_id, 2)
    with outage(database_url):
        await asyncio.sleep(3 * LEASE_SECONDS)
    final = await wait_status(on_a, thread_id, run["run_id"], TERMINAL, timeout=60)
    logs = {name: instance.log_path.read_text()[-3000:] for name, instance in (("a", a), ("b", b))}
    assert final["status"] == "success", (final, logs)
    assert (await on_b.threads.get_state(thread_id))["values"]["log"] == [f"r:{i}" for i in range(1, 7)]
    seen = await _followed(following)
    _assert_seen_to_the_end(seen, [f"r:{i}" for i in range(1, 7)])


def cut_off(database_url: str, role: str) -> contextlib.AbstractContextManager[None]:
    """The database goes away for one role's connections only (as for a server behind a broken network path):
    they are dropped and new ones refused for the block, while other roles' work on."""
    who = sql.Identifier(role)
    return _refused(database_url, sql.SQL("ALTER ROLE {} NOLOGIN").format(who),
                    sql.SQL("ALTER ROLE {} LOGIN").format(who), "usename", role)


async def test_an_instance_cut_off_for_longer_than_the_lease_hands_its_run_over(instances, database_url):
    """a executes a run and loses the database for three leases while b keeps it: b resumes the run and ends
    it, each step once; a, back, stops its copy rather than finishing it a second time, and a's followers go
    on with b's events to the run's end."""
    role = f"cut_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(sql.Identifier(role)))
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    a = instances("a", url=url_for_database(database_url, name, user=role))
    b = instances("b")
    on_a, on_b = sdk(a), sdk(b)
    thread_id = (await on_a.threads.create())["thread_id"]
    run = await on_a.runs.create(thread_id, "slow", input={"steps": 8, "delay": 0.4, "label": "h"})
    await wait_status(on_a, thread_id, run["run_id"], "running")
    following = _follow_on({"a": on_a, "b": on_b}, thread_id, run["run_id"])

    async def follow_thread() -> list[tuple[str, object]]:  # the thread's stream on a, to the run's end
        events = []
        async for part in await on_a.threads.join_stream(thread_id):
            events.append((part.event, part.data))
            if part.event == "metadata" and part.data.get("status") == "run_done":
                break
        return events

    following["a's thread"] = asyncio.create_task(follow_thread())
    await wait_steps(on_b, thread_id, 2)
    with cut_off(database_url, role):
        await asyncio.sleep(3 * LEASE_SECONDS)
    final = await wait_status(on_b, thread_id, run["run_id"], TERMINAL, timeout=60)
    logs = {name: instance.log_path.read_text()[-3000:] for name, instance in (("a", a), ("b", b))}
    assert final["status"] == "success", (final, logs)
    seen = await _followed(following)
    await asyncio.sleep(1)  # time for a's copy to write a step it should not
    assert (await on_b.threads.get_state(thread_id))["values"]["log"] == [f"h:{i}" for i in range(1, 9)], logs
    assert "taken over by another process" in a.log_path.read_text()
    await assert_one_history(on_b, thread_id)
    _assert_seen_to_the_end(seen, [f"h:{i}" for i in range(1, 9)])
    for name, events in seen.items():  # b's attempt is seen whole, from its start, after whatever a did
        assert {"run_id": run["run_id"], "attempt": 2} in [data for event, data in events if event == "metadata"], (
            name, events)
    assert [data for event, data in seen["a's thread"] if event == "metadata" and "status" in data] == [
        {"status": "run_done", "run_id": run["run_id"]}]
