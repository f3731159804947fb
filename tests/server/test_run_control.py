"""Run control beyond single cancels: cancel_many, after_seconds, durability, if_not_exists, prune."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from langgraph_sdk import get_client

from aegra_server.graphs import default_assistant_id
from aegra_server.settings import Settings
from aegra_server.storage.database import Database
from aegra_server.storage.repositories import Repositories
from aegra_server.storage.urls import parse_database_url
from helpers import TERMINAL, human, new_thread, wait_status
from tests.server.conftest import HTTP_TIMEOUT, _ServerThread


async def test_cancel_many_by_thread(client, http):
    thread_id = await new_thread(client)
    running = await client.runs.create(thread_id, "slow", input={"steps": 20, "delay": 0.1, "label": "a"})
    queued = await client.runs.create(thread_id, "slow", input={"steps": 1, "delay": 0.1, "label": "b"})
    await wait_status(client, thread_id, running["run_id"], "running")
    response = await http.post("/runs/cancel", json={"thread_id": thread_id, "run_ids": [running["run_id"], queued["run_id"]]})
    assert response.status_code == 204
    assert (await wait_status(client, thread_id, running["run_id"], TERMINAL))["status"] == "interrupted"
    assert (await wait_status(client, thread_id, queued["run_id"], TERMINAL))["status"] == "interrupted"


async def test_a_cancel_leaves_why_in_the_thread_error_until_the_next_run(client, http):
    """As langgraph-api records the exception that stopped the run: UserInterrupt or UserRollback, with the way the
    cancel was asked for (its message names the route, placeholders as they are); the next run clears it."""
    thread_id = await new_thread(client)
    one = "/threads/{thread_id}/runs/{run_id}/cancel"
    for action, route in (("interrupt", one), ("rollback", one), ("interrupt", "/runs/cancel")):
        run = await client.runs.create(thread_id, "slow", input={"steps": 50, "delay": 0.1})
        await wait_status(client, thread_id, run["run_id"], "running")
        if route == one:
            await client.runs.cancel(thread_id, run["run_id"], wait=True, action=action)
        else:
            await http.post(route, json={"thread_id": thread_id, "run_ids": [run["run_id"]]})
        deadline = time.monotonic() + 10
        while (thread := await client.threads.get(thread_id))["status"] == "busy":
            assert time.monotonic() < deadline
        assert thread["error"] == {
            "error": "UserRollback" if action == "rollback" else "UserInterrupt",
            "message": f"{action} requested via POST {route}",
        }, thread
    await client.runs.wait(thread_id, "slow", input={"steps": 1, "delay": 0})
    assert (await client.threads.get(thread_id))["error"] is None


async def test_cancel_many_by_run_ids(client):
    thread_id = await new_thread(client)
    running = await client.runs.create(thread_id, "slow", input={"steps": 20, "delay": 0.1, "label": "a"})
    queued = await client.runs.create(thread_id, "slow", input={"steps": 1, "delay": 0.05, "label": "b"})
    await wait_status(client, thread_id, running["run_id"], "running")
    await client.runs.cancel_many(thread_id=thread_id, run_ids=[queued["run_id"]])
    assert (await wait_status(client, thread_id, queued["run_id"], TERMINAL))["status"] == "interrupted"
    assert (await client.runs.get(thread_id, running["run_id"]))["status"] == "running"
    await client.runs.cancel_many(thread_id=thread_id, run_ids=[running["run_id"]])
    assert (await wait_status(client, thread_id, running["run_id"], TERMINAL))["status"] == "interrupted"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "status"),
        ({"thread_id": str(uuid.uuid4())}, "run_ids"),  # a thread's runs are listed, not implied
        ({"run_ids": [str(uuid.uuid4())]}, "thread_id"),
        ({"status": "pending", "thread_id": str(uuid.uuid4())}, "thread_id"),  # a status spans every thread
        ({"status": "all", "run_ids": [str(uuid.uuid4())]}, "run_ids"),
    ],
)
async def test_cancel_many_is_by_status_or_by_thread_and_run_ids(http, body, named):
    # langgraph-api's rules; all but {} were taken (by thread, by ids, or both filters at once) and answered 204.
    response = await http.post("/runs/cancel", json=body)
    assert response.status_code == 422
    assert named in response.json()["detail"]


async def test_after_seconds_delays_the_start(client):
    thread_id = await new_thread(client)
    started = time.monotonic()
    run = await client.runs.create(thread_id, "echo", input=human("later"), after_seconds=1)
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "pending"
    await client.runs.join(thread_id, run["run_id"])
    assert time.monotonic() - started >= 1.0


async def test_durability_exit_writes_only_the_final_checkpoint(client):
    exit_thread = await new_thread(client)
    await client.runs.wait(exit_thread, "echo", input=human("d"), durability="exit")
    sync_thread = await new_thread(client)
    await client.runs.wait(sync_thread, "echo", input=human("d"), durability="sync")
    exit_history = await client.threads.get_history(exit_thread, limit=100)
    sync_history = await client.threads.get_history(sync_thread, limit=100)
    assert len(exit_history) < len(sync_history)
    assert exit_history[0]["values"]["turns"] == 1
    # Older clients say it as checkpoint_during=false (the SDK still offers it).
    old_thread = await new_thread(client)
    with pytest.warns(DeprecationWarning):
        await client.runs.wait(old_thread, "echo", input=human("d"), checkpoint_during=False)
    assert len(await client.threads.get_history(old_thread, limit=100)) == len(exit_history)


async def test_run_on_unknown_thread_is_404_unless_if_not_exists_create(client):
    thread_id = str(uuid.uuid4())
    with pytest.raises(httpx.HTTPStatusError) as raised:
        await client.runs.create(thread_id, "echo", input=human("x"))
    assert raised.value.response.status_code == 404
    out = await client.runs.wait(thread_id, "echo", input=human("x"), if_not_exists="create")
    assert out["turns"] == 1


async def test_prune_delete_and_keep_latest(client):
    gone = await new_thread(client)
    kept = await new_thread(client)
    for thread_id in (gone, kept):
        await client.runs.wait(thread_id, "echo", input=human("p"))
        await client.runs.wait(thread_id, "echo", input=human("q"))
    assert len(await client.threads.get_history(kept, limit=100)) > 1

    assert (await client.threads.prune([gone], strategy="delete"))["pruned_count"] == 1
    with pytest.raises(httpx.HTTPStatusError) as raised:
        await client.threads.get(gone)
    assert raised.value.response.status_code == 404

    assert (await client.threads.prune([kept], strategy="keep_latest"))["pruned_count"] == 1
    history = await client.threads.get_history(kept, limit=100)
    assert len(history) == 1 and history[0]["values"]["turns"] == 2
    assert (await client.threads.get_state(kept))["values"]["turns"] == 2


async def test_prune_of_no_threads_prunes_none(client, http):
    # As langgraph-api answers; it was a 422.
    assert await client.threads.prune([]) == {"pruned_count": 0}
    assert (await http.post("/threads/prune", json={"thread_ids": [], "strategy": "keep_latest"})).json() == {"pruned_count": 0}
    missing = await http.post("/threads/prune", json={})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "thread_ids"]


async def test_malformed_checkpoint_references_are_422(client, http):
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "echo", input=human("c"))
    for path, body in [
        (f"/threads/{thread_id}/history", {"before": {"configurable": 5}}),
        (f"/threads/{thread_id}/history", {"checkpoint": {"checkpoint_ns": 7}}),
        (f"/threads/{thread_id}/state/checkpoint", {"checkpoint": {"checkpoint_ns": 7}}),
    ]:
        response = await http.post(path, json=body)
        assert response.status_code == 422, (path, body, response.text)
    listed = await http.get(f"/threads/{thread_id}/runs", params={"status": "bogus"})
    assert listed.status_code == 422 and "status" in str(listed.json()["detail"])


async def _orphaned_run(database_url: str, thread_id: str, text: str, *, started: int = 1) -> dict:
    """An echo run stored running (claimed) by a process that no longer exists, whose lease has run out, as if
    that had happened `started` times; the server claims it within its poll."""
    db = Database(parse_database_url(database_url))
    try:
        repos = Repositories.build(db)
        run, _ = await repos.runs.create(
            {
                "run_id": str(uuid.uuid4()),
                "thread_id": thread_id,
                "assistant_id": default_assistant_id("echo"),
                "metadata": {},
                "kwargs": {"input": human(text), "stream_mode": ["values"]},
                "multitask_strategy": "enqueue",
            },
            create_thread=False,
            reject_if_busy=False,
            claim_for="gone:1:dead",
            lease_seconds=-1,
        )
        for _ in range(started - 1):
            await repos.runs.next_attempt("gone:1:dead", run["run_id"], -1)
        return run
    finally:
        await db.close()


async def test_a_run_orphaned_before_its_first_checkpoint_restarts_from_its_input(client, database_url):
    """A run stored running (claimed) by a process that died before the graph checkpointed: the next claim
    must give the graph the run's input, not resume it from nothing."""
    thread_id = await new_thread(client)
    run = await _orphaned_run(database_url, thread_id, "orphan")
    assert run["status"] == "running"
    output = await client.runs.join(thread_id, run["run_id"])  # claimed by the server within its poll
    assert [m["content"] for m in output["messages"]] == ["orphan", "echo: orphan"]
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"


async def test_a_run_whose_process_stopped_too_often_ends_in_error(client, http, database_url):
    """A run resumed after its process stopped under it AEGRA_RUN_MAX_ATTEMPTS times (3, as LangGraph Platform's
    BG_JOB_MAX_RETRIES) is not resumed again: it ends in error saying why (it used to be resumed forever)."""
    thread_id = await new_thread(client)
    run = await _orphaned_run(database_url, thread_id, "crashy", started=3)
    joined = await http.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
    error = joined.json()["__error__"]
    assert error["error"] == "RuntimeError" and "started 3 times" in error["message"], error
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "error"
    assert (await client.threads.get(thread_id))["status"] == "error"
    assert (await client.threads.get_state(thread_id))["values"] == {}  # never run a fourth time


async def test_a_full_process_starts_waiting_runs_as_its_runs_end(graphs_config, tmp_path, monkeypatch):
    """With AEGRA_MAX_CONCURRENT_RUNS=1 (here under LangGraph Platform's name, N_JOBS_PER_WORKER), a run on another
    thread waits (pending) while the first runs, then starts when it ends; both finish."""
    monkeypatch.setenv("N_JOBS_PER_WORKER", "1")
    settings = Settings(AEGRA_CONFIG=graphs_config, DATABASE_URL=f"sqlite:///{tmp_path / 'full.db'}")
    assert settings.max_concurrent_runs == 1
    server = _ServerThread(settings)
    server.start()
    sdk = get_client(url=server.url, api_key=None, timeout=HTTP_TIMEOUT)
    try:
        first_thread, second_thread = await new_thread(sdk), await new_thread(sdk)
        first = await sdk.runs.create(first_thread, "slow", input={"steps": 6, "delay": 0.1, "label": "a"})
        await wait_status(sdk, first_thread, first["run_id"], "running")
        second = await sdk.runs.create(second_thread, "slow", input={"steps": 1, "delay": 0.01, "label": "b"})
        assert (await sdk.runs.get(second_thread, second["run_id"]))["status"] == "pending"
        assert (await sdk.runs.get(first_thread, first["run_id"]))["status"] == "running"
        assert (await sdk.runs.join(second_thread, second["run_id"]))["log"] == ["b:1"]
        assert (await sdk.runs.get(first_thread, first["run_id"]))["status"] == "success"
    finally:
        await sdk.http.client.aclose()
        server.stop()


async def test_a_run_past_the_timeout_ends_as_timeout(graphs_config, tmp_path, monkeypatch):
    """AEGRA_RUN_TIMEOUT_SECONDS (or LangGraph Platform's BG_JOB_TIMEOUT_SECS) stops a run: status `timeout`, its
    thread `error`, the error in its stream and in what wait and join answer; the next run goes on."""
    monkeypatch.setenv("BG_JOB_TIMEOUT_SECS", "0.5")  # read from the environment, under LangGraph's name
    settings = Settings(AEGRA_CONFIG=graphs_config, DATABASE_URL=f"sqlite:///{tmp_path / 'timeout.db'}")
    assert settings.run_timeout_seconds == 0.5
    server = _ServerThread(settings)
    server.start()
    sdk = get_client(url=server.url, api_key=None, timeout=HTTP_TIMEOUT)
    try:
        thread_id = await new_thread(sdk)
        started = time.monotonic()
        output = await sdk.runs.wait(
            thread_id, "slow", input={"steps": 100, "delay": 0.05, "label": "t"}, raise_error=False
        )
        assert time.monotonic() - started < 3
        assert output["__error__"]["error"] == "TimeoutError" and "0.5 s" in output["__error__"]["message"]
        [run] = await sdk.runs.list(thread_id)
        assert run["status"] == "timeout"
        assert (await sdk.threads.get(thread_id))["status"] == "error"
        assert 0 < len((await sdk.threads.get_state(thread_id))["values"]["log"]) < 100  # stopped part way

        events = [part async for part in sdk.runs.stream(
            thread_id, "slow", input={"steps": 100, "delay": 0.05, "label": "s"}, stream_mode="values"
        )]
        assert events[-1].event == "error" and events[-1].data["error"] == "TimeoutError"
        assert (await sdk.runs.wait(thread_id, "slow", input={"steps": 1, "delay": 0.0, "label": "ok"}))["log"][-1] == "ok:1"
        assert (await sdk.threads.get(thread_id))["status"] == "idle"
    finally:
        await sdk.http.client.aclose()
        server.stop()
