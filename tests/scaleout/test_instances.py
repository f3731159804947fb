"""Several `aegra serve` processes share one Postgres: any of them serves any run; a dead one's runs resume."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client

from aegra_server.storage.urls import parse_database_url
from tests.scaleout.instances import BACKENDS, LEASE_SECONDS, Instance, database

TERMINAL = {"success", "error", "interrupted", "timeout"}


def sdk(instance):
    return get_client(url=instance.url, timeout=httpx.Timeout(60.0, connect=5.0))


async def wait_status(client, thread_id: str, run_id: str, wanted, timeout: float = 30.0) -> dict:
    wanted = {wanted} if isinstance(wanted, str) else set(wanted)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        run = await client.runs.get(thread_id, run_id)
        if run["status"] in wanted:
            return run
        assert asyncio.get_running_loop().time() < deadline, f"run stayed {run['status']}"
        await asyncio.sleep(0.1)


async def wait_steps(client, thread_id: str, at_least: int, timeout: float = 30.0) -> list[str]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        log = (await client.threads.get_state(thread_id))["values"].get("log") or []
        if len(log) >= at_least:
            return log
        assert asyncio.get_running_loop().time() < deadline, f"only {log} after {timeout} s"
        await asyncio.sleep(0.1)


async def assert_one_history(client, thread_id: str) -> None:
    """The thread's checkpoints form one chain, each step's once: no branch written by a process that had lost
    the run (its steps' checkpoints beside those of the process that resumed it)."""
    history = await client.threads.get_history(thread_id, limit=100)
    chain = [(state["checkpoint"]["checkpoint_id"], (state["parent_checkpoint"] or {}).get("checkpoint_id"))
             for state in history]
    assert [parent for _, parent in chain[:-1]] == [checkpoint for checkpoint, _ in chain[1:]], [
        (state["metadata"].get("step"), state["values"].get("log")) for state in history]


async def test_a_run_created_on_one_instance_is_served_by_the_other(pair):
    a, b = sdk(pair[0]), sdk(pair[1])
    thread = await a.threads.create()
    tid = thread["thread_id"]
    run = await a.runs.create(tid, "slow", input={"steps": 4, "delay": 0.3, "label": "x"}, stream_resumable=True)

    # streamed from the other instance, from the start, while it runs
    parts = [p async for p in b.runs.join_stream(tid, run["run_id"], last_event_id="-1")]
    assert parts[0].event == "metadata" and parts[0].data["run_id"] == run["run_id"]
    values = [p.data for p in parts if p.event == "values"]
    assert values[-1]["log"] == ["x:1", "x:2", "x:3", "x:4"]
    ids = [int(p.id) for p in parts]
    assert ids == sorted(set(ids))

    # replayed from the middle, again from the other instance, once it is finished
    middle = parts[len(parts) // 2]
    rest = [p async for p in b.runs.join_stream(tid, run["run_id"], last_event_id=middle.id)]
    assert [(p.id, p.event) for p in rest] == [(p.id, p.event) for p in parts[len(parts) // 2 + 1:]]

    # joined from the other instance
    assert (await b.runs.join(tid, run["run_id"]))["log"] == ["x:1", "x:2", "x:3", "x:4"]
    assert (await b.runs.get(tid, run["run_id"]))["status"] == "success"


@pytest.fixture(scope="module", params=BACKENDS)
def survivor(request, tmp_path_factory) -> Iterator[Instance]:
    """The instance that outlives the ones the tests below stop or kill (`victims`), on their database; shared,
    since starting it is most of what such a test costs."""
    folder = tmp_path_factory.mktemp("survivor")
    with database(request, request.param, folder) as url:
        server = Instance(url, folder, "survivor")
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def victims(survivor: Instance, tmp_path: Path):
    """A factory for instances on the survivor's database, for a test to stop or kill; gone at its end."""
    started: list[Instance] = []

    def start(**kwargs) -> Instance:
        started.append(Instance(survivor.database_url, tmp_path, f"victim{len(started)}", **kwargs))
        return started[-1]

    yield start
    for instance in started:
        instance.stop()


async def _thread_stream_until_done(client, thread_id: str) -> list:
    parts = []
    async for part in await client.threads.join_stream(thread_id):
        parts.append(part)
        if part.event == "metadata" and part.data.get("status") == "run_done":
            return parts
    return parts


async def test_a_thread_stream_shows_runs_executed_by_the_other_instance(pair):
    """GET /threads/{id}/stream on one instance follows a run that another instance executes, from its first
    event (its metadata) to its end (run_done), as when both are the same process."""
    a, b = sdk(pair[0]), sdk(pair[1])
    tid = (await a.threads.create())["thread_id"]
    follower = asyncio.create_task(asyncio.wait_for(_thread_stream_until_done(a, tid), 30))
    await asyncio.sleep(0.5)  # subscribed before the run starts
    run = await b.runs.create(tid, "slow", input={"steps": 3, "delay": 0.1, "label": "x"})
    parts = await follower
    assert parts[0].event == "metadata" and parts[0].data["run_id"] == run["run_id"]
    assert parts[-1].data == {"status": "run_done", "run_id": run["run_id"]}
    assert [p.data for p in parts if p.event == "values"][-1]["log"] == ["x:1", "x:2", "x:3"]
    ids = [int(p.id) for p in parts]
    assert ids == sorted(set(ids))


async def _thread_stream_until(client, thread_id: str, runs_done: int, **kwargs) -> list:
    parts = []
    async for part in await client.threads.join_stream(thread_id, **kwargs):
        parts.append(part)
        if part.event == "metadata" and part.data.get("status") == "run_done":
            runs_done -= 1
            if runs_done == 0:
                return parts
    return parts


def _done_in(parts) -> int:
    return sum(1 for p in parts if p.event == "metadata" and p.data.get("status") == "run_done")


async def test_a_thread_stream_resumes_on_the_other_instance(pair):
    """Thread stream ids mean the same on every instance: a client that read on one and reconnects to another
    with Last-Event-ID (a load balancer, `--workers`) gets exactly what came after, though the other instance
    never followed the thread; also in the middle of a run."""
    a, b = sdk(pair[0]), sdk(pair[1])
    tid = (await a.threads.create())["thread_id"]
    follower = asyncio.create_task(asyncio.wait_for(_thread_stream_until(a, tid, 2), 30))
    await asyncio.sleep(0.5)
    await b.runs.create(tid, "slow", input={"steps": 2, "delay": 0.05, "label": "b"})
    await a.runs.create(tid, "slow", input={"steps": 2, "delay": 0.05, "label": "a"}, multitask_strategy="enqueue")
    parts = await follower
    for cut in (0, len(parts) // 2, len(parts) - 2):
        rest = await asyncio.wait_for(
            _thread_stream_until(b, tid, _done_in(parts[cut + 1:]), last_event_id=parts[cut].id), 30
        )
        assert [(p.id, p.event, p.data) for p in rest] == [(p.id, p.event, p.data) for p in parts[cut + 1:]]

    live = asyncio.create_task(asyncio.wait_for(_thread_stream_until(a, tid, 1), 30))
    await asyncio.sleep(0.5)
    await a.runs.create(tid, "slow", input={"steps": 4, "delay": 0.3, "label": "l"})
    await wait_steps(a, tid, 2 + 2 + 2)  # the two runs before wrote two steps each
    resumed = [p async for p in _first_parts(a, tid, parts[-1].id, 4)]
    rest = await asyncio.wait_for(_thread_stream_until(b, tid, 1, last_event_id=resumed[-1].id), 30)
    whole = await live
    assert [p.id for p in whole] == [p.id for p in resumed] + [p.id for p in rest]
    assert [p.data for p in whole if p.event == "values"][-1]["log"][-4:] == [f"l:{i}" for i in range(1, 5)]


async def test_an_edit_of_the_state_on_one_instance_reaches_thread_streams_on_the_other(pair):
    """`state_update` events: the other instance reads the edited state itself (a signal carries none) and
    sends it under the same id."""
    a, b = sdk(pair[0]), sdk(pair[1])
    tid = (await a.threads.create())["thread_id"]
    await a.runs.wait(tid, "slow", input={"steps": 1, "delay": 0, "label": "s"})

    async def first_update(client):
        async for part in await client.threads.join_stream(tid, stream_mode="state_update"):
            return part

    on_a = asyncio.create_task(asyncio.wait_for(first_update(a), 30))
    on_b = asyncio.create_task(asyncio.wait_for(first_update(b), 30))
    await asyncio.sleep(0.5)
    await b.threads.update_state(tid, {"label": "edited"})
    seen_a, seen_b = await on_a, await on_b
    assert seen_a.event == seen_b.event == "state_update"
    assert seen_a.id == seen_b.id
    assert seen_a.data == seen_b.data
    assert seen_a.data["state"]["values"]["label"] == "edited"


async def _first_parts(client, thread_id: str, last_event_id: str, count: int):
    async for part in await client.threads.join_stream(thread_id, last_event_id=last_event_id):
        yield part
        count -= 1
        if count == 0:
            return


async def test_a_late_signal_of_a_run_already_in_a_thread_stream_copies_nothing_again(pair):
    """A run of the other instance whose end is in a thread's log here: a signal of its events that comes after
    (NOTIFY is not ordered with the reads that found its end) started a second copy, from its first event."""
    if not pair[0].database_url.startswith("postgresql"):
        pytest.skip("sends the signal as a Postgres NOTIFY")
    a, b = sdk(pair[0]), sdk(pair[1])
    tid = (await a.threads.create())["thread_id"]
    follower = asyncio.create_task(asyncio.wait_for(_thread_stream_until_done(a, tid), 30))
    await asyncio.sleep(0.5)
    run = await b.runs.create(tid, "slow", input={"steps": 2, "delay": 0.05, "label": "x"})
    parts = await follower
    assert parts[-1].data == {"status": "run_done", "run_id": run["run_id"]}
    conninfo = parse_database_url(pair[0].database_url).conninfo
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute("SELECT pg_notify('aegra_events', %s)", (f"{run['run_id']} {tid}",))
    await asyncio.sleep(0.5)

    seen = []

    async def follow_on() -> None:
        async for part in await a.threads.join_stream(tid, last_event_id=parts[-1].id):
            seen.append((part.event, part.data))

    task = asyncio.create_task(follow_on())
    await asyncio.sleep(1.5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert seen == []


async def test_a_thread_stream_opened_mid_run_shows_the_other_instance_s_run_whole(pair):
    """A reader who arrives while the other instance is half-way through a run gets that run from its first event
    (its metadata), not only what comes after."""
    a, b = sdk(pair[0]), sdk(pair[1])
    tid = (await a.threads.create())["thread_id"]
    run = await b.runs.create(tid, "slow", input={"steps": 5, "delay": 0.4, "label": "m"})
    await wait_steps(b, tid, 2)
    parts = await asyncio.wait_for(_thread_stream_until_done(a, tid), 30)
    assert parts[0].event == "metadata" and parts[0].data["run_id"] == run["run_id"]
    assert parts[-1].data == {"status": "run_done", "run_id": run["run_id"]}
    assert [p.data for p in parts if p.event == "values"][0]["log"] == []  # the input, before any step
    assert [p.data for p in parts if p.event == "values"][-1]["log"] == [f"m:{i}" for i in range(1, 6)]


async def test_a_thread_stream_follows_a_run_resumed_where_it_is_read(victims, survivor):
    """The reader is on b, the run starts on a, a dies and b resumes the run: the stream shows the first attempt
    (copied from a's persisted events), then the second (b's own), and the run's end once."""
    a_proc = victims()
    a, b = sdk(a_proc), sdk(survivor)
    tid = (await a.threads.create())["thread_id"]
    follower = asyncio.create_task(asyncio.wait_for(_thread_stream_until_done(b, tid), LEASE_SECONDS * 5 + 30))
    await asyncio.sleep(0.5)
    run = await a.runs.create(tid, "slow", input={"steps": 5, "delay": 0.4, "label": "r"})
    await wait_steps(a, tid, 2)
    a_proc.kill()
    parts = await follower
    starts = [p.data.get("attempt") for p in parts if p.event == "metadata" and "attempt" in p.data]
    assert starts == [1, 2]
    assert [p for p in parts if p.event == "metadata" and "status" in p.data] == [parts[-1]]
    assert parts[-1].data == {"status": "run_done", "run_id": run["run_id"]}
    assert [p.data for p in parts if p.event == "values"][-1]["log"] == [f"r:{i}" for i in range(1, 6)]
    ids = [int(p.id) for p in parts]
    assert ids == sorted(set(ids))


async def test_the_thread_protocol_shows_runs_started_on_the_other_instance(pair):
    """`client.threads.stream()` over SSE on one instance, its `run.start` command sent to another: the events
    of the run arrive on the stream, ending with the root lifecycle `completed`."""
    a, b = pair
    tid = (await sdk(a).threads.create())["thread_id"]
    methods: list[tuple[str, dict]] = []

    async def follow() -> None:
        async with httpx.AsyncClient(base_url=a.url, timeout=30) as http, http.stream(
            "POST", f"/threads/{tid}/stream/events", json={"channels": ["values", "lifecycle"]}
        ) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    methods.append((event["method"], event["params"]))
                    if event["method"] == "lifecycle" and not event["params"]["namespace"] \
                            and event["params"]["data"].get("event") == "completed":
                        return

    follower = asyncio.create_task(asyncio.wait_for(follow(), 30))
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient(base_url=b.url, timeout=30) as http:
        answer = await http.post(f"/threads/{tid}/commands", json={
            "id": 1, "method": "run.start",
            "params": {"assistant_id": "slow", "input": {"steps": 2, "delay": 0.1, "label": "y"}},
        })
        assert answer.json()["type"] == "success", answer.text
    await follower
    assert [p["data"]["log"] for m, p in methods if m == "values"][-1] == ["y:1", "y:2"]


async def _command(instance, thread_id: str, method: str, params: dict) -> dict:
    async with httpx.AsyncClient(base_url=instance.url, timeout=30) as http:
        answer = (await http.post(f"/threads/{thread_id}/commands", json={"id": 1, "method": method, "params": params})).json()
    assert answer["type"] == "success", answer
    return answer


async def _protocol_events(instance, thread_id: str, until, **body) -> list[dict]:
    """The thread-protocol events an instance streams (POST /threads/{id}/stream/events), up to the first for which
    `until(event)` holds."""
    events: list[dict] = []

    async def read() -> None:
        async with httpx.AsyncClient(base_url=instance.url, timeout=30) as http, http.stream(
            "POST", f"/threads/{thread_id}/stream/events", json={"channels": ["values", "lifecycle", "input"], **body}
        ) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if until(events[-1]):
                        return

    await asyncio.wait_for(read(), 20)
    return events


def _completed(event: dict) -> bool:
    params = event["params"]
    return event["method"] == "lifecycle" and not params["namespace"] and params["data"].get("event") == "completed"


def _nth_completed(n: int):
    """An `until` for _protocol_events: the root lifecycle `completed` of the n-th run."""
    seen = 0

    def until(event: dict) -> bool:
        nonlocal seen
        seen += _completed(event)
        return seen == n

    return until


async def test_the_thread_protocol_on_one_instance_shows_a_run_that_ended_on_the_other(pair):
    """A client subscribing on one instance after its run started and ended on the other still gets the run (the
    SDK subscribes while it sends run.start, which wins the race with a quick run), and every instance numbers a
    thread's events alike: the `since` a command answered on one means the same on the others."""
    a, b = pair
    tid = (await sdk(a).threads.create())["thread_id"]
    first = await _command(b, tid, "run.start", {"assistant_id": "slow", "input": {"steps": 2, "delay": 0, "label": "p"}})
    await sdk(b).runs.join(tid, first["result"]["run_id"])
    replayed = await _protocol_events(a, tid, _completed)
    assert [e["params"]["data"]["log"] for e in replayed if e["method"] == "values"][-1] == ["p:1", "p:2"]

    second = await _command(b, tid, "run.start", {"assistant_id": "slow", "input": {"steps": 1, "delay": 0, "label": "q"}})
    since = second["meta"]["applied_through_seq"]
    seen = {name: await _protocol_events(instance, tid, _completed, since=since) for name, instance in (("a", a), ("b", b))}
    assert [(e["seq"], e["method"]) for e in seen["a"]] == [(e["seq"], e["method"]) for e in seen["b"]]
    assert seen["a"][0]["seq"] == since + 1 and seen["a"][0]["method"] == "lifecycle"
    assert [e["params"]["data"]["log"] for e in seen["a"] if e["method"] == "values"][-1] == ["p:1", "p:2", "q:1"]


async def test_the_thread_protocol_numbers_alike_where_a_thread_stream_was_read_first(pair):
    """An instance that followed the thread with GET /threads/{id}/stream before anyone there used the protocol
    numbers the protocol's events as the others do: the thread stream's log started from the history too."""
    a, b = pair
    tid = (await sdk(a).threads.create())["thread_id"]
    first = await _command(b, tid, "run.start", {"assistant_id": "slow", "input": {"steps": 1, "delay": 0, "label": "h"}})
    await sdk(b).runs.join(tid, first["result"]["run_id"])
    joined = asyncio.create_task(asyncio.wait_for(_thread_stream_until(sdk(a), tid, 1), 30))
    await asyncio.sleep(0.5)
    await _command(b, tid, "run.start", {"assistant_id": "slow", "input": {"steps": 1, "delay": 0, "label": "i"}})
    await joined
    seen = [await _protocol_events(instance, tid, _nth_completed(2), since=0) for instance in (a, b)]
    assert [(e["seq"], e["method"]) for e in seen[0]] == [(e["seq"], e["method"]) for e in seen[1]]


async def test_an_interrupt_is_answered_on_the_other_instance_as_soon_as_it_is_requested(pair):
    a, b = pair
    tid = (await sdk(a).threads.create())["thread_id"]
    await _command(b, tid, "run.start", {"assistant_id": "hitl", "input": {"topic": "elsewhere"}})
    requested = await _protocol_events(b, tid, lambda event: event["method"] == "input.requested")
    interrupt_id = requested[-1]["params"]["data"]["interrupt_id"]
    await _command(a, tid, "input.respond", {"interrupt_id": interrupt_id, "response": "yes"})
    await _protocol_events(a, tid, _completed, since=requested[-1]["seq"])
    assert (await sdk(a).threads.get_state(tid))["values"]["decision"] == "yes"


async def test_cancel_from_the_other_instance(pair):
    a, b = sdk(pair[0]), sdk(pair[1])
    tid = (await a.threads.create())["thread_id"]
    run = await a.runs.create(tid, "slow", input={"steps": 50, "delay": 0.2, "label": "c"})
    await wait_steps(a, tid, 1)
    await b.runs.cancel(tid, run["run_id"], wait=True)
    assert (await a.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    thread = await a.threads.get(tid)
    assert thread["status"] != "busy"
    # how it was asked for went with the cancel to the instance that executed the run
    assert thread["error"]["message"] == "interrupt requested via POST /threads/{thread_id}/runs/{run_id}/cancel"
    steps = len((await a.threads.get_state(tid))["values"]["log"])
    await asyncio.sleep(0.6)
    assert len((await a.threads.get_state(tid))["values"]["log"]) == steps  # it really stopped


async def test_a_run_rolled_back_mid_burst_stores_its_last_events_before_it_goes(pair):
    """A run rolled back in the middle of a burst of events: its last events are stored with its end, before the
    run is deleted. Written after, they were refused (on Postgres psycopg logged an aborted pipeline for each).
    A client following its stream on the other instance sees it end, with events the run did send; the last ones
    may be gone with the run before that instance reads them."""
    a, b = sdk(pair[0]), sdk(pair[1])
    log_size = pair[0].log_path.stat().st_size
    tid = (await a.threads.create())["thread_id"]
    # No delay between steps: events are always on their way to the database when the rollback comes.
    run = await a.runs.create(tid, "slow", input={"steps": 100_000, "delay": 0, "label": "r"}, stream_resumable=True)
    await wait_steps(a, tid, 2)

    async def follow(client) -> list:
        parts = client.runs.join_stream(tid, run["run_id"], stream_mode="values", last_event_id="-1")
        return [part.data async for part in parts]

    here, elsewhere = asyncio.ensure_future(follow(a)), asyncio.ensure_future(follow(b))
    await asyncio.sleep(0.5)
    await a.runs.cancel(tid, run["run_id"], action="rollback", wait=True)
    sent, received = await asyncio.wait_for(asyncio.gather(here, elsewhere), timeout=30)
    await asyncio.sleep(0.5)  # what the executing instance does after the end
    with pair[0].log_path.open("rb") as log:
        log.seek(log_size)
        written = log.read().decode(errors="replace")
    assert "pipeline aborted" not in written and "persisting" not in written, written[-2000:]
    assert (await a.runs.list(tid)) == []
    assert received and all(part in sent for part in received)


async def test_stateless_runs_executed_by_the_other_instance_answer_their_client(victims, survivor):
    """A stateless run created where no slot is free is executed by another instance: the client waiting on the
    first still gets its output (wait) and every event to the end (stream), and the temporary threads are gone
    once it has them."""
    if survivor.database_url.startswith("sqlite"):
        pytest.skip("on SQLite the instances are one server's workers; which one a request reaches is not ours to pick")
    a_proc = victims(env={"AEGRA_MAX_CONCURRENT_RUNS": "1"})
    a, b = sdk(a_proc), sdk(survivor)
    busy = (await a.threads.create())["thread_id"]
    occupying = await a.runs.create(busy, "slow", input={"steps": 100, "delay": 0.2, "label": "busy"})
    await wait_status(a, busy, occupying["run_id"], "running")  # a's one slot, for the whole test
    threads = await b.threads.count()

    output = await a.runs.wait(None, "slow", input={"steps": 2, "delay": 0.1, "label": "w"})
    assert output["log"] == ["w:1", "w:2"]
    parts = [part async for part in a.runs.stream(None, "slow", input={"steps": 2, "delay": 0.1, "label": "s"})]
    assert [part.data["log"] for part in parts if part.event == "values"][-1] == ["s:1", "s:2"], parts
    assert await b.threads.count() == threads
    assert (await a.runs.get(busy, occupying["run_id"]))["status"] == "running"  # so b executed both
    await a.runs.cancel(busy, occupying["run_id"], wait=True)


async def test_a_temporary_thread_whose_waiting_client_went_away_is_swept(victims, survivor):
    """A stateless run executed by another instance than the one its client waits on: that one deletes the
    temporary thread once its client has the output. Here it dies first; the executor kept the thread with an
    expiry (TEMPORARY_THREAD_GRACE_SECONDS), and once that has passed any instance's sweeper deletes it."""
    if survivor.database_url.startswith("sqlite"):
        pytest.skip("on SQLite the instances are one server's workers; which one a request reaches is not ours to pick")
    a_proc = victims(env={"AEGRA_MAX_CONCURRENT_RUNS": "1"})
    victims(env={"AEGRA_THREAD_SWEEP_SECONDS": "0.3"})  # a sweeper that looks often, for the last step
    a, b = sdk(a_proc), sdk(survivor)
    busy = (await a.threads.create())["thread_id"]
    occupying = await a.runs.create(busy, "slow", input={"steps": 100, "delay": 0.2, "label": "busy"})
    await wait_status(a, busy, occupying["run_id"], "running")  # a's one slot: the next run goes elsewhere

    async with httpx.AsyncClient(base_url=a_proc.url, timeout=60) as raw:
        body = {"assistant_id": "slow", "input": {"steps": 10, "delay": 0.2, "label": "t"}}
        async with raw.stream("POST", "/runs/wait", json=body) as response:
            run_id = response.headers["Content-Location"].rsplit("/", 1)[1]
            with psycopg.connect(survivor.database_url, autocommit=True) as conn:
                thread_id = conn.execute("SELECT thread_id FROM runs WHERE run_id = %s", (run_id,)).fetchone()[0]
                await wait_status(b, thread_id, run_id, "running")
                a_proc.kill()  # the client's instance, with the client's request
                await wait_status(b, thread_id, run_id, "success")
                expires_at = conn.execute(
                    "SELECT expires_at - now() FROM threads WHERE thread_id = %s", (thread_id,)
                ).fetchone()[0]
                assert 200 < expires_at.total_seconds() <= 300, expires_at  # kept for its creator, for a while
                assert (await b.threads.get_state(thread_id))["values"]["log"][-1] == "t:10"
                # that while passes
                conn.execute("UPDATE threads SET expires_at = now() WHERE thread_id = %s", (thread_id,))

    deadline = asyncio.get_running_loop().time() + 20
    while True:
        try:
            await b.threads.get(thread_id)
        except httpx.HTTPStatusError as exc:
            assert exc.response.status_code == 404
            break
        assert asyncio.get_running_loop().time() < deadline, "the expired temporary thread is still there"
        await asyncio.sleep(0.2)
    await b.runs.cancel(busy, occupying["run_id"], wait=True)  # resumed elsewhere once a died


async def test_a_client_leaving_a_join_on_the_other_instance_cancels_the_run(pair):
    """join_stream with cancel_on_disconnect on the instance that does not run it: the client leaves, the run
    stops (the cancel used to be cancelled with the departing request before it reached the database)."""
    a, b_proc = sdk(pair[0]), pair[1]
    tid = (await a.threads.create())["thread_id"]
    run = await a.runs.create(tid, "slow", input={"steps": 50, "delay": 0.2, "label": "d"})
    await wait_steps(a, tid, 1)
    seen = 0
    async with httpx.AsyncClient(base_url=b_proc.url, timeout=30) as raw:
        path = f"/threads/{tid}/runs/{run['run_id']}/stream"
        async with raw.stream("GET", path, params={"cancel_on_disconnect": "true", "stream_mode": "values"}) as response:
            async for line in response.aiter_lines():
                seen += line.startswith("event: values")
                if seen == 2:
                    break  # leaving: the connection closes
    assert (await wait_status(a, tid, run["run_id"], TERMINAL, timeout=15))["status"] == "interrupted"
    assert len((await a.threads.get_state(tid))["values"]["log"]) < 50


async def test_multitask_strategies_hold_across_instances(pair):
    a, b = sdk(pair[0]), sdk(pair[1])
    tid = (await a.threads.create())["thread_id"]
    first = await a.runs.create(tid, "slow", input={"steps": 3, "delay": 0.3, "label": "first"})
    await wait_status(a, tid, first["run_id"], "running")
    with pytest.raises(httpx.HTTPStatusError) as raised:
        await b.runs.create(tid, "slow", input={"steps": 1, "delay": 0.1, "label": "no"}, multitask_strategy="reject")
    assert raised.value.response.status_code == 409
    # enqueued from the other instance: runs after the first, never beside it
    second = await b.runs.create(tid, "slow", input={"steps": 1, "delay": 0.1, "label": "second"})
    out = await b.runs.join(tid, second["run_id"])
    assert out["log"] == ["first:1", "first:2", "first:3", "second:1"]
    # interrupt from the other instance stops the running one and starts the new one
    third = await a.runs.create(tid, "slow", input={"steps": 30, "delay": 0.2, "label": "third"})
    await wait_status(a, tid, third["run_id"], "running")
    fourth = await b.runs.create(tid, "slow", input={"steps": 1, "delay": 0.1, "label": "fourth"},
                                 multitask_strategy="interrupt")
    await b.runs.join(tid, fourth["run_id"])
    assert (await b.runs.get(tid, third["run_id"]))["status"] == "interrupted"
    assert (await b.runs.get(tid, fourth["run_id"]))["status"] == "success"


async def test_runs_of_a_dead_instance_resume_elsewhere_each_step_once(victims, survivor):
    a_proc = victims()
    b = sdk(survivor)
    a = sdk(a_proc)
    tid = (await a.threads.create())["thread_id"]
    run = await a.runs.create(tid, "slow", input={"steps": 6, "delay": 0.4, "label": "k"})
    await wait_steps(a, tid, 2)
    a_proc.kill()  # SIGKILL: no goodbye
    final = await wait_status(b, tid, run["run_id"], TERMINAL, timeout=LEASE_SECONDS * 5 + 20)
    assert final["status"] == "success"
    log = (await b.threads.get_state(tid))["values"]["log"]
    assert log == [f"k:{i}" for i in range(1, 7)]  # every step exactly once, none lost, none repeated


async def test_a_stalled_instance_writes_none_of_its_late_steps_beside_the_run_resumed_elsewhere(victims, survivor):
    """An instance stopped for longer than the lease while it executes a run (SIGSTOP: a long pause, heavy
    swapping): the survivor resumes the run and ends it. The stalled one, running again, finishes the step it was
    in, but its lease ran out: that step's checkpoint is not written, and it lets the run go. (On SQLite the
    instance may have been stopped holding the file's write lock: then nobody could take the run over, and it
    goes on with it from its last checkpoint.)"""
    a_proc = victims()
    a, b = sdk(a_proc), sdk(survivor)
    tid = (await a.threads.create())["thread_id"]
    run = await a.runs.create(tid, "slow", input={"steps": 8, "delay": 0.4, "label": "p"})
    await wait_steps(b, tid, 2)
    with a_proc.stalled():
        await asyncio.sleep(3 * LEASE_SECONDS)
    final = await wait_status(b, tid, run["run_id"], TERMINAL, timeout=LEASE_SECONDS * 5 + 20)
    deadline = asyncio.get_running_loop().time() + 20
    while not any(line in a_proc.log_path.read_text() for line in ("taken over by another process", "resuming run")):
        assert asyncio.get_running_loop().time() < deadline, a_proc.log_path.read_text()[-3000:]
        await asyncio.sleep(0.1)
    if survivor.database_url.startswith("postgres"):
        assert "taken over by another process" in a_proc.log_path.read_text()
    assert final["status"] == "success"
    assert (await b.threads.get_state(tid))["values"]["log"] == [f"p:{i}" for i in range(1, 9)]
    await assert_one_history(b, tid)


async def test_a_run_from_an_earlier_checkpoint_resumes_from_its_own_last_one(victims, survivor):
    """A run started at a given checkpoint (a fork, as Studio's "rerun from here"), orphaned halfway: it goes on
    from the checkpoints it wrote, not from the one it was started at (which would run its steps again)."""
    a_proc = victims()
    b = sdk(survivor)
    a = sdk(a_proc)
    tid = (await a.threads.create())["thread_id"]
    await a.runs.wait(tid, "slow", input={"steps": 1, "delay": 0, "label": "base"})
    fork_at = (await a.threads.get_state(tid))["checkpoint"]["checkpoint_id"]
    run = await a.runs.create(
        tid, "slow", input={"steps": 5, "delay": 0.4, "label": "f"}, checkpoint_id=fork_at
    )
    await wait_steps(a, tid, 3)  # base:1 and two of the fork's
    a_proc.kill()
    final = await wait_status(b, tid, run["run_id"], TERMINAL, timeout=LEASE_SECONDS * 5 + 20)
    assert final["status"] == "success"
    assert (await b.threads.get_state(tid))["values"]["log"] == ["base:1", *(f"f:{i}" for i in range(1, 6))]


async def test_sigterm_hands_unfinished_runs_to_another_instance(victims, survivor):
    a_proc = victims(grace=0.5)
    b = sdk(survivor)
    a = sdk(a_proc)
    tid = (await a.threads.create())["thread_id"]
    run = await a.runs.create(tid, "slow", input={"steps": 8, "delay": 0.4, "label": "t"})
    await wait_steps(a, tid, 1)
    await a.http.client.aclose()  # no connection keeps the server from stopping
    # uvicorn shuts down gracefully, then re-raises the signal, so the process ends "killed by SIGTERM"
    assert await asyncio.to_thread(a_proc.terminate) in (0, -signal.SIGTERM)
    assert "handed 1 unfinished run(s) back" in a_proc.log_path.read_text()
    final = await wait_status(b, tid, run["run_id"], TERMINAL, timeout=30)
    assert final["status"] == "success"
    assert (await b.threads.get_state(tid))["values"]["log"] == [f"t:{i}" for i in range(1, 9)]


async def test_sigterm_lets_a_short_run_finish_within_the_grace_period(victims, survivor):
    a_proc = victims(grace=20)
    a = sdk(a_proc)
    tid = (await a.threads.create())["thread_id"]
    run = await a.runs.create(tid, "slow", input={"steps": 3, "delay": 0.3, "label": "g"})
    await wait_steps(a, tid, 1)
    await a.http.client.aclose()
    assert await asyncio.to_thread(a_proc.terminate) in (0, -signal.SIGTERM)
    assert "handed" not in a_proc.log_path.read_text()
    b = sdk(survivor)
    final = await b.runs.get(tid, run["run_id"])
    assert final["status"] == "success"
    assert (await b.threads.get_state(tid))["values"]["log"] == ["g:1", "g:2", "g:3"]


async def test_sigterm_with_a_client_following_a_long_run_stops_within_the_grace_period(victims, survivor):
    """A stream following a run that outlasts the grace period: the server stops within about the grace period and
    hands the run back (it used to wait for the whole run, since the HTTP server waited for the stream)."""
    a_proc = victims(grace=2)
    b = sdk(survivor)
    a = sdk(a_proc)
    tid = (await a.threads.create())["thread_id"]
    run = await a.runs.create(tid, "slow", input={"steps": 40, "delay": 0.25, "label": "s"}, stream_resumable=True)
    await wait_steps(a, tid, 1)
    follower = asyncio.create_task(_drain(a.runs.join_stream(tid, run["run_id"])))
    await asyncio.sleep(0.3)
    started = asyncio.get_running_loop().time()
    assert await asyncio.to_thread(a_proc.terminate, 30) in (0, -signal.SIGTERM)
    assert asyncio.get_running_loop().time() - started < 2 + 3  # the grace, plus the hand-back; not the run's 10 s
    assert "handed 1 unfinished run(s) back" in a_proc.log_path.read_text()
    follower.cancel()  # cut off with the server (the SDK would go on reconnecting to it)
    await asyncio.gather(follower, return_exceptions=True)
    done = len((await b.threads.get_state(tid))["values"]["log"])
    await wait_steps(b, tid, done + 1)  # resumed on the other instance (test_sigterm_hands_... checks it whole)
    await b.runs.cancel(tid, run["run_id"], wait=True)


async def _drain(stream) -> None:
    async for _ in stream:
        pass


async def _all_workers_up(server, workers: int = 2) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while server.log_path.read_text().count("Application startup complete") < workers:
        assert asyncio.get_running_loop().time() < deadline, server.log_path.read_text()[-3000:]
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module", params=BACKENDS)
def with_workers(request, tmp_path_factory) -> Iterator[Instance]:
    """One `aegra serve --workers 2` (with metrics), shared by the tests below: none stops it."""
    folder = tmp_path_factory.mktemp("workers")
    with database(request, request.param, folder) as url:
        server = Instance(url, folder, "w", workers=2, env={"ENABLE_METRICS": "1"})
        try:
            yield server
        finally:
            server.stop()


async def test_one_server_with_workers_serves_every_run(with_workers):
    """`aegra serve --workers 2`, on either database: runs sent to its one port all finish, whichever of its
    two processes takes them."""
    server = with_workers
    await _all_workers_up(server)
    client = sdk(server)
    threads = [(await client.threads.create())["thread_id"] for _ in range(8)]
    outputs = await asyncio.gather(
        *(client.runs.wait(t, "slow", input={"steps": 2, "delay": 0.05, "label": str(i)}) for i, t in enumerate(threads))
    )
    assert [output["log"] for output in outputs] == [[f"{i}:1", f"{i}:2"] for i in range(8)]


def _sockets_on(port: int, state: str, peers: set[int] | None = None) -> list[int]:
    """Inodes of the TCP sockets whose local port is `port`, in `state` (/proc/net/tcp: 0A listening,
    01 connected; 0 for a connection no process has accepted yet), connected to one of the ports `peers` if given."""
    inodes = []
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
        if local == port and fields[3] == state and (peers is None or remote in peers):
            inodes.append(int(fields[9]))
    return inodes


def _holders(inodes: list[int]) -> collections.Counter:
    """How many of the sockets `inodes` each process holds open."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    held: collections.Counter = collections.Counter()
    for fds in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            held[int(fds.parent.name)] += sum(os.readlink(fd) in wanted for fd in fds.iterdir())
    return +held


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads connections on Linux")
async def test_connections_are_spread_over_the_workers(with_workers):
    """Each worker listens on the port with a socket of its own (SO_REUSEPORT), so the kernel hands new
    connections to all of them. With one shared socket the first worker to wake accepted every connection
    waiting, and a client's keep-alive pool, opened at once, stayed on that one worker."""
    server = with_workers
    await _all_workers_up(server)
    listeners = _holders(_sockets_on(server.port, "0A"))
    assert len(listeners) == 2 and set(listeners.values()) == {1}, listeners  # one socket in each worker
    connections = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(32)]
    ours = {connection.getsockname()[1] for connection in connections}  # not other tests' keep-alive connections
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while 0 in _sockets_on(server.port, "01", ours):  # until both workers have accepted what is theirs
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        accepted = _holders(_sockets_on(server.port, "01", ours))
        # Spread by a hash of each client port: all 32 on one worker would happen once in two billion.
        assert set(accepted) == set(listeners) and sum(accepted.values()) == 32, accepted
    finally:
        for connection in connections:
            connection.close()


def _sample(text: str, name: str) -> float | None:
    """One series' value from Prometheus text (`name` with its labels as rendered)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def _scrapes(server, *series: str) -> set[tuple[float | None, ...]]:
    """The values of `series` in eight scrapes, each on a new connection: either worker answers."""
    seen = set()
    for _ in range(8):
        async with httpx.AsyncClient(base_url=server.url) as http:
            text = (await http.get("/metrics")).text
        seen.add(tuple(_sample(text, name) or 0.0 for name in series))
    return seen


async def test_metrics_answer_for_every_worker(with_workers):
    """A scrape reaches one worker of `aegra serve --workers 2`, but counts what both served: requests answered
    by either and runs executed by either."""
    server = with_workers
    await _all_workers_up(server)
    client = sdk(server)
    requests = 'aegra_http_requests_total{method="GET",route="/info",status="200"}'
    runs = 'aegra_runs_total{status="success"}'
    before = await _scrapes(server, requests, runs)
    assert len(before) == 1, before  # every scrape counts both workers
    (requests_before, runs_before), = before
    for _ in range(16):  # a connection each, spread over the workers
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/info")).status_code == 200
    threads = [(await client.threads.create())["thread_id"] for _ in range(4)]
    await asyncio.gather(*(client.runs.wait(t, "echo", input={"messages": []}) for t in threads))
    assert await _scrapes(server, requests, runs, "aegra_runs_executing") == {
        (requests_before + 16, runs_before + 4, 0.0)
    }
