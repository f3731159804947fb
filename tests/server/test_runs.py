"""Runs: background/wait/stream, list/get/delete, stateless runs, cancel, commands, breakpoints, multitasking."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from tests.server.helpers import TERMINAL, default_assistant_id, eventually, human, new_thread, tag, texts, wait_status

RUN_FIELDS = {"run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status", "metadata", "kwargs", "multitask_strategy"}


# ---- create, wait, stream, join -------------------------------------------------------------------------------


async def test_background_run_then_join(client):
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input=human("bg"), metadata={"m": 1})
    assert set(run) >= RUN_FIELDS
    assert run["status"] == "pending"
    assert run["thread_id"] == thread_id
    assert run["assistant_id"] == default_assistant_id("echo")
    # As langgraph-api: the run's own over its thread's (graph and assistant stamped) and its assistant's.
    assert run["metadata"] == {"m": 1, "created_by": "system", "graph_id": "echo", "assistant_id": run["assistant_id"]}
    assert run["multitask_strategy"] == "enqueue"
    output = await client.runs.join(thread_id, run["run_id"])
    assert texts(output) == ["bg", "echo: bg"]
    finished = await client.runs.get(thread_id, run["run_id"])
    assert finished["status"] == "success"
    assert finished["created_at"] == run["created_at"]
    assert finished["updated_at"] >= run["updated_at"]
    # joining a finished run again gives the same output
    assert await client.runs.join(thread_id, run["run_id"]) == output


async def test_wait_and_stream_agree(client):
    waited = await client.runs.wait(await new_thread(client), "echo", input=human("same"))
    thread_id = await new_thread(client)
    parts = [p async for p in client.runs.stream(thread_id, "echo", input=human("same"))]
    assert parts[0].event == "metadata"
    assert {p.event for p in parts[1:]} == {"values"}
    assert texts(parts[-1].data) == texts(waited) and parts[-1].data["turns"] == waited["turns"]
    assert (await client.runs.list(thread_id))[0]["status"] == "success"


async def test_run_headers(http):
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    body = {"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": "h"}]}}

    created = await http.post(f"/threads/{thread_id}/runs", json=body)
    run_id = created.json()["run_id"]
    assert uuid.UUID(run_id).version == uuid.UUID(thread_id).version == 7  # as langgraph-api mints them
    assert created.headers["content-location"] == f"/threads/{thread_id}/runs/{run_id}"
    assert "location" not in created.headers

    waited = await http.post(f"/threads/{thread_id}/runs/wait", json=body)
    run_id = waited.headers["content-location"].rsplit("/", 1)[1]
    assert waited.headers["content-location"] == f"/threads/{thread_id}/runs/{run_id}"
    assert waited.headers["location"] == f"/threads/{thread_id}/runs/{run_id}/join"
    assert (await http.get(waited.headers["content-location"])).json()["status"] == "success"

    async with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as streamed:
        run_id = streamed.headers["content-location"].rsplit("/", 1)[1]
        assert streamed.headers["content-location"] == f"/threads/{thread_id}/runs/{run_id}"
        assert streamed.headers["location"] == f"/threads/{thread_id}/runs/{run_id}/stream"
        await streamed.aread()

    async with http.stream("GET", f"/threads/{thread_id}/runs/{run_id}/stream") as joined:
        assert joined.headers["location"] == f"/threads/{thread_id}/runs/{run_id}/stream"
        await joined.aread()

    # A stateless wait names its temporary thread's routes, as langgraph-api does: Location must be followable.
    stateless = await http.post("/runs/wait", json={**body, "on_completion": "keep"})
    path = stateless.headers["content-location"]
    assert re.fullmatch(r"/threads/[0-9a-f-]{36}/runs/[0-9a-f-]{36}", path)
    assert stateless.headers["location"] == f"{path}/join"
    rejoined = await http.get(stateless.headers["location"])
    assert rejoined.status_code == 200 and rejoined.json() == stateless.json()


async def test_on_run_created_callback(client):
    seen = []
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "echo", input=human("cb"), on_run_created=seen.append)
    [meta] = seen
    assert meta["thread_id"] == thread_id
    assert meta["run_id"] == (await client.runs.list(thread_id))[0]["run_id"]


async def test_run_on_missing_thread(client):
    with pytest.raises(NotFoundError):
        await client.runs.create(str(uuid.uuid4()), "echo", input={})
    thread_id = str(uuid.uuid4())
    output = await client.runs.wait(thread_id, "echo", input=human("made"), if_not_exists="create")
    assert texts(output) == ["made", "echo: made"]
    assert (await client.threads.get(thread_id))["metadata"]["graph_id"] == "echo"


async def test_unknown_assistant_is_404_and_bad_id_is_422(client):
    thread_id = await new_thread(client)
    with pytest.raises(NotFoundError):
        await client.runs.create(thread_id, str(uuid.uuid4()), input={})
    # Neither an id nor a graph's name: a 422 naming both possibilities, as langgraph-api answers.
    with pytest.raises(UnprocessableEntityError) as refused:
        await client.runs.create(thread_id, "no-such-graph", input={})
    assert "neither an assistant's id" in str(refused.value.response.json()["detail"])
    with pytest.raises(UnprocessableEntityError):
        await client.runs.get(thread_id, "not-a-uuid")
    assert await client.runs.list(thread_id) == []


# ---- list / get / delete --------------------------------------------------------------------------------------


async def test_list_newest_first_with_status_filter_and_paging(client):
    thread_id = await new_thread(client)
    ok = [(await client.runs.create(thread_id, "echo", input=human(str(i))))["run_id"] for i in range(3)]
    bad = (await client.runs.create(thread_id, "failing", input={}))["run_id"]
    await client.runs.join(thread_id, bad)
    runs = await client.runs.list(thread_id)
    assert [r["run_id"] for r in runs] == [bad, *ok[::-1]]
    assert [r["run_id"] for r in await client.runs.list(thread_id, status="error")] == [bad]
    assert [r["run_id"] for r in await client.runs.list(thread_id, status="success")] == ok[::-1]
    assert await client.runs.list(thread_id, status="pending") == []
    assert [r["run_id"] for r in await client.runs.list(thread_id, limit=2, offset=1)] == [ok[2], ok[1]]
    assert await client.runs.list(thread_id, limit=1, select=["run_id", "status"]) == [{"run_id": bad, "status": "error"}]
    with pytest.raises(UnprocessableEntityError):
        await client.runs.list(thread_id, select=["run_id", "secret"])
    with pytest.raises(NotFoundError):
        await client.runs.list(str(uuid.uuid4()))


async def test_get_checks_the_thread(client):
    thread_id = await new_thread(client)
    other = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input={})
    with pytest.raises(NotFoundError):
        await client.runs.get(other, run["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, str(uuid.uuid4()))


async def test_delete_run(client, http):
    """The run goes, and with it what it left in its thread's history (its checkpoints, as langgraph-api deletes
    them); the thread shows the state before it."""
    thread_id = await new_thread(client)
    first = await client.runs.wait(thread_id, "echo", input=human("x"))
    history = await client.threads.get_history(thread_id, limit=50)
    run = await client.runs.create(thread_id, "echo", input=human("y"))
    await client.runs.join(thread_id, run["run_id"])
    assert (await client.threads.get(thread_id))["values"]["turns"] == 2
    response = await http.delete(f"/threads/{thread_id}/runs/{run['run_id']}")
    assert response.status_code == 204
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, run["run_id"])
    assert len(await client.runs.list(thread_id)) == 1
    assert await client.threads.get_history(thread_id, limit=50) == history
    assert (await client.threads.get_state(thread_id))["values"] == first
    assert (await client.threads.get(thread_id))["values"] == first
    with pytest.raises(NotFoundError):
        await client.runs.delete(thread_id, run["run_id"])


async def test_delete_running_run_stops_it(client):
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "slow", input={"steps": 50, "delay": 0.1})
    await wait_status(client, thread_id, run["run_id"], "running")
    await client.runs.delete(thread_id, run["run_id"])
    assert await client.runs.list(thread_id) == []
    assert (await client.threads.get(thread_id))["status"] != "busy"


# ---- stateless runs -------------------------------------------------------------------------------------------


async def test_stateless_run_leaves_no_thread(client, http):
    body = {"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": "gone"}]}}
    response = await http.post("/runs/wait", json=body)
    assert texts(response.json()) == ["gone", "echo: gone"]

    async def gone(thread_id: str) -> bool:
        try:
            await client.threads.get(thread_id)
        except NotFoundError:
            return True
        return False

    run = await client.runs.create(None, "echo", input=human("bg"))
    assert run["status"] == "pending"
    await eventually(lambda: gone(run["thread_id"]))
    with pytest.raises(NotFoundError):
        await client.runs.get(run["thread_id"], run["run_id"])

    # a stateless stream: its temporary thread id shows in the messages metadata
    parts = [p async for p in client.runs.stream(None, "chat", input=human("s"), stream_mode="messages-tuple")]
    thread_id = parts[1].data[1]["thread_id"]
    await eventually(lambda: gone(thread_id))


async def test_a_stateless_wait_for_a_run_that_starts_later_gives_its_output(client):
    """The run waits (after_seconds) before it starts; its temporary thread goes with it when it ends, so the
    output must come from the run itself (it used to be {})."""
    marker = tag()
    output = await client.runs.wait(None, "echo", input=human(marker), after_seconds=1)
    assert texts(output) == [marker, f"echo: {marker}"]
    stream = [p async for p in client.runs.stream(None, "echo", input=human(marker), after_seconds=1)]
    assert texts([p.data for p in stream if p.event == "values"][-1]) == [marker, f"echo: {marker}"]


async def test_stateless_run_keep(client):
    marker = tag()
    run = await client.runs.create(None, "echo", input=human(marker), on_completion="keep", metadata={"m": marker})
    output = await client.runs.join(run["thread_id"], run["run_id"])
    assert texts(output) == [marker, f"echo: {marker}"]
    thread = await client.threads.get(run["thread_id"])
    assert thread["metadata"]["graph_id"] == "echo"
    assert texts(thread["values"]) == [marker, f"echo: {marker}"]
    assert (await client.runs.get(run["thread_id"], run["run_id"]))["metadata"]["m"] == marker


async def test_create_batch(client):
    marker = tag()
    runs = await client.runs.create_batch(
        [
            {"assistant_id": "echo", "input": human(marker), "on_completion": "keep"},
            {"assistant_id": "configurable", "input": {"name": marker}, "on_completion": "keep"},
        ]
    )
    assert [r["assistant_id"] for r in runs] == [default_assistant_id("echo"), default_assistant_id("configurable")]
    assert runs[0]["thread_id"] != runs[1]["thread_id"]
    first = await client.runs.join(runs[0]["thread_id"], runs[0]["run_id"])
    second = await client.runs.join(runs[1]["thread_id"], runs[1]["run_id"])
    assert texts(first) == [marker, f"echo: {marker}"]
    assert second == {"name": marker, "greeting": f"Hello, {marker}!"}


async def test_an_empty_batch_is_422(client):
    # As langgraph-api has it ("[] has less than 1 item"); it answered [].
    with pytest.raises(UnprocessableEntityError) as refused:
        await client.runs.create_batch([])
    assert refused.value.response.json()["detail"][0]["loc"] == ["body"]


# ---- cancel ---------------------------------------------------------------------------------------------------


async def test_cancel_interrupt(client, http):
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "slow", input={"steps": 100, "delay": 0.05, "label": "c"})
    await wait_status(client, thread_id, run["run_id"], "running")
    await asyncio.sleep(0.2)
    response = await http.post(f"/threads/{thread_id}/runs/{run['run_id']}/cancel", params={"action": "interrupt"})
    assert response.status_code == 202
    assert response.headers["content-location"] == f"/threads/{thread_id}/runs/{run['run_id']}"
    cancelled = await wait_status(client, thread_id, run["run_id"], TERMINAL)
    assert cancelled["status"] == "interrupted"
    thread = await client.threads.get(thread_id)
    assert thread["status"] != "busy"
    # the steps done before the cancel are kept
    done = len((await client.threads.get_state(thread_id))["values"].get("log", []))
    assert 0 < done < 100


async def test_cancel_with_wait(client):
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "slow", input={"steps": 100, "delay": 0.05})
    await wait_status(client, thread_id, run["run_id"], "running")
    await asyncio.sleep(0.2)
    output = await client.runs.cancel(thread_id, run["run_id"], wait=True)
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"
    assert 0 < output["done"] < 100
    assert output["log"][-1] == f"run:{output['done']}"
    # Cut short with `step` still to run: the thread waits, and input=None goes on from there.
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    assert (await client.threads.get_state(thread_id))["next"] == ["step"]
    finished = await client.runs.wait(thread_id, "slow", input=None, config={"configurable": {"delay": 0}})
    assert finished["done"] == 100
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_cancel_rollback_leaves_no_trace(client):
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "slow", input={"steps": 1, "delay": 0, "label": "kept"})
    history_before = await client.threads.get_history(thread_id, limit=100)
    state_before = await client.threads.get_state(thread_id)

    run = await client.runs.create(thread_id, "slow", input={"steps": 100, "delay": 0.05, "label": "gone"})
    await wait_status(client, thread_id, run["run_id"], "running")
    await asyncio.sleep(0.3)  # a few checkpoints are written
    # The run is gone: its output is nothing, as a JSON object like every other wait's (the SDK returns it).
    assert await client.runs.cancel(thread_id, run["run_id"], action="rollback", wait=True) == {}

    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, run["run_id"])
    assert [r["status"] for r in await client.runs.list(thread_id)] == ["success"]
    assert await client.threads.get_history(thread_id, limit=100) == history_before
    assert (await client.threads.get_state(thread_id))["values"] == state_before["values"]
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["values"]["log"] == ["kept:1"]


async def _running_after_a_first_run(client, *, steps: int, delay: float) -> tuple[str, dict]:
    """A thread whose first run ("base:1") is done and whose second (label "x") has taken a few steps."""
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "slow", input={"steps": 1, "delay": 0, "label": "base"})
    run = await client.runs.create(thread_id, "slow", input={"steps": steps, "delay": delay, "label": "x"})
    await wait_status(client, thread_id, run["run_id"], "running")
    await asyncio.sleep(0.2)
    return thread_id, run


async def test_cancels_with_different_actions_at_once_take_the_first_ones_action(client, server_url):
    """An interrupt and a rollback asked for together: the run ends as one of them whole — kept as interrupted with
    its steps, or gone with its steps — never a mix (the second used to change the action halfway)."""
    other = get_client(url=server_url, api_key=None)
    try:
        for _ in range(4):
            thread_id, run = await _running_after_a_first_run(client, steps=100, delay=0.02)
            answers = await asyncio.gather(
                client.runs.cancel(thread_id, run["run_id"], action="interrupt", wait=True),
                other.runs.cancel(thread_id, run["run_id"], action="rollback", wait=True),
                return_exceptions=True,
            )
            # Whichever arrives after the run has already ended is refused as a cancel of an ended run (404),
            # as in langgraph-api; at least one of them is the one that ended it. (A cancel with wait=True goes
            # through the SDK's reconnecting request, which raises httpx's own error, not NotFoundError.)
            refused = [a for a in answers if isinstance(a, BaseException)]
            assert len(refused) < 2, answers
            assert all(isinstance(a, httpx.HTTPStatusError) and a.response.status_code == 404 for a in refused), answers
            log = (await client.threads.get_state(thread_id))["values"]["log"]
            try:
                status = (await client.runs.get(thread_id, run["run_id"]))["status"]
            except NotFoundError:
                assert log == ["base:1"], log  # rolled back: its steps went with it
            else:
                assert status == "interrupted" and log[0] == "base:1" and len(log) > 1, (status, log)
            assert (await client.threads.get(thread_id))["status"] != "busy"
    finally:
        await other.http.client.aclose()


async def test_a_rollback_followed_by_more_cancels_leaves_none_of_the_run_s_steps(client, server_url):
    """A rollback, and more cancels of the same run right behind it (clients pressing stop again): the run goes with
    all its steps. The later cancels used to cancel the run's task again, cutting short LangGraph's wait for its
    last checkpoint write, which then landed after the rollback had deleted the run's checkpoints (11 in 30 on
    Postgres)."""
    others = [get_client(url=server_url, api_key=None) for _ in range(3)]

    async def cancel(sdk, thread_id: str, run_id: str, action: str) -> None:
        with contextlib.suppress(httpx.HTTPStatusError):  # a cancel that comes after the end is a 404
            await sdk.runs.cancel(thread_id, run_id, action=action, wait=True)

    try:
        for _ in range(8):
            # No delay between steps: a checkpoint write is always under way.
            thread_id, run = await _running_after_a_first_run(client, steps=100_000, delay=0)
            await asyncio.gather(
                cancel(client, thread_id, run["run_id"], "rollback"),
                *(cancel(other, thread_id, run["run_id"], "interrupt") for other in others),
            )
            runs = await client.runs.list(thread_id)
            if all(r["run_id"] != run["run_id"] for r in runs):  # the rollback came first (the usual case)
                assert (await client.threads.get_state(thread_id))["values"]["log"] == ["base:1"]
    finally:
        for other in others:
            await other.http.client.aclose()


async def test_cancel_unknown_run_is_404(client):
    thread_id = await new_thread(client)
    with pytest.raises(NotFoundError):
        await client.runs.cancel(thread_id, str(uuid.uuid4()))


async def test_cancel_of_an_ended_run_is_404_as_in_langgraph_api(client, http):
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "echo", input=human("done"))
    [run] = await client.runs.list(thread_id)
    with pytest.raises(NotFoundError) as refused:
        await client.runs.cancel(thread_id, run["run_id"])
    assert "success" in str(refused.value)
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"  # untouched
    # Cancelling many: ids must be UUIDs, and a criterion nothing pending or running matches is a 404 too.
    assert (await http.post("/runs/cancel", json={"thread_id": thread_id, "run_ids": ["nope"]})).status_code == 422
    assert (await http.post("/runs/cancel", json={"thread_id": "nope", "run_ids": []})).status_code == 422
    none_left = await http.post("/runs/cancel", json={"thread_id": thread_id, "run_ids": [run["run_id"]]})
    assert none_left.status_code == 404


# ---- commands, breakpoints, forks -----------------------------------------------------------------------------


async def test_breakpoint_then_continue_with_null_input(client):
    thread_id = await new_thread(client)
    paused = await client.runs.wait(thread_id, "echo", input=human("bp"), interrupt_before=["tally"])
    assert paused["turns"] == 0 and texts(paused) == ["bp", "echo: bp"]
    run = (await client.runs.list(thread_id))[0]
    assert run["status"] == "success"
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    assert (await client.threads.get_state(thread_id))["next"] == ["tally"]

    finished = await client.runs.wait(thread_id, "echo", input=None)
    assert finished["turns"] == 1
    assert texts(finished) == ["bp", "echo: bp"]  # tally ran; echo did not run again
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_interrupt_after(client):
    thread_id = await new_thread(client)
    paused = await client.runs.wait(thread_id, "echo", input=human("ia"), interrupt_after=["echo"])
    assert paused["turns"] == 0
    assert (await client.threads.get_state(thread_id))["next"] == ["tally"]
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    assert (await client.runs.wait(thread_id, "echo", input=None))["turns"] == 1


async def test_interrupt_before_all(client):
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "echo", input=human("all"), interrupt_before="*")
    assert (await client.threads.get_state(thread_id))["next"] == ["echo"]
    await client.runs.wait(thread_id, "echo", input=None, interrupt_before="*")
    assert (await client.threads.get_state(thread_id))["next"] == ["tally"]


async def test_command_goto_and_update(client):
    paused = await new_thread(client)
    await client.runs.wait(paused, "echo", input=human("p"), interrupt_before=["tally"])
    # goto adds `echo` beside the pending `tally`; echo then leads to tally once more
    output = await client.runs.wait(paused, "echo", command={"goto": "echo"})
    assert texts(output) == ["p", "echo: p", "echo: echo: p"]
    assert output["turns"] == 2

    patched = await new_thread(client)
    await client.runs.wait(patched, "echo", input=human("p"), interrupt_before=["tally"])
    output = await client.runs.wait(patched, "echo", command={"update": {"note": "patched"}})
    assert output["note"] == "patched"
    assert output["turns"] == 1
    assert texts(output) == ["p", "echo: p"]


async def test_command_wins_over_empty_input(http):
    """Agent Chat UI sends `input: {}` together with the resume command."""
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    await http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "hitl", "input": {"topic": "t"}})
    response = await http.post(
        f"/threads/{thread_id}/runs/wait",
        json={"assistant_id": "hitl", "input": {}, "command": {"resume": "from the ui"}},
    )
    assert response.json()["decision"] == "from the ui"


async def test_fork_from_checkpoint(client):
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "echo", input=human("one"))
    fork_point = (await client.threads.get_state(thread_id))["checkpoint"]
    await client.runs.wait(thread_id, "echo", input=human("two"))

    forked = await client.runs.wait(thread_id, "echo", input=human("other"), checkpoint_id=fork_point["checkpoint_id"])
    assert texts(forked) == ["one", "echo: one", "other", "echo: other"]
    assert forked["turns"] == 2
    head = await client.threads.get_state(thread_id)
    assert head["values"]["turns"] == 2
    # also with a checkpoint object, as Studio sends it
    again = await client.runs.wait(
        thread_id, "echo", input=human("third"), checkpoint={"checkpoint_id": fork_point["checkpoint_id"]}
    )
    assert texts(again) == ["one", "echo: one", "third", "echo: third"]


# ---- config, context, metadata --------------------------------------------------------------------------------


async def test_config_and_context_merge_over_the_assistant(client):
    assistant = await client.assistants.create(
        graph_id="configurable",
        config={"configurable": {"greeting": "Hey"}, "metadata": {"from_assistant": 1}},
    )
    thread_id = await new_thread(client)
    output = await client.runs.wait(
        thread_id, assistant["assistant_id"], input={"name": "A"}, config={"metadata": {"from_run": 2}}
    )
    assert output["greeting"] == "Hey, A!"  # the assistant's configurable survives a run config without one
    metadata = (await client.threads.get_state(thread_id))["metadata"]
    assert metadata["from_assistant"] == 1 and metadata["from_run"] == 2
    overridden = await client.runs.wait(
        None, assistant["assistant_id"], input={"name": "B"}, config={"configurable": {"greeting": "Yo"}}
    )
    assert overridden["greeting"] == "Yo, B!"

    with_context = await client.assistants.create(graph_id="configurable", context={"greeting": "Ctx"})
    assert (await client.runs.wait(None, with_context["assistant_id"], input={"name": "C"}))["greeting"] == "Ctx, C!"
    assert (
        await client.runs.wait(None, with_context["assistant_id"], input={"name": "D"}, context={"greeting": "Run"})
    )["greeting"] == "Run, D!"


async def test_run_metadata_reaches_run_and_checkpoints(client):
    marker = tag()
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input=human("m"), metadata={"marker": marker})
    await client.runs.join(thread_id, run["run_id"])
    assert (await client.runs.get(thread_id, run["run_id"]))["metadata"]["marker"] == marker
    state = await client.threads.get_state(thread_id)
    assert state["metadata"]["marker"] == marker
    assert state["metadata"]["run_id"] == run["run_id"]


async def test_what_a_graph_sees_of_its_caller_without_auth(client, http):
    """As langgraph-api without auth: no user (a client's config cannot pose as one), `user_id` "" unless the run,
    thread or assistant set one, the creating request's id, and the run's attempt in its metadata."""
    thread_id = await new_thread(client)
    forged = {"configurable": {"langgraph_auth_user": {"identity": "bob"}, "langgraph_auth_user_id": "bob"}}
    response = await http.post(
        f"/threads/{thread_id}/runs/wait",
        json={"assistant_id": "whoami", "input": {}, "config": forged},
        headers={"X-Request-ID": "req-1234"},
    )
    assert response.json() == {
        "identity": None,
        "user_id": "",
        "permissions": [],
        "org": None,
        "runtime_identity": None,
        "configurable_user_id": "",
        "request_id": "req-1234",
        "run_attempt": 1,
    }
    assert (await client.threads.get_state(thread_id))["metadata"]["run_attempt"] == 1
    given = await client.runs.wait(None, "whoami", input={}, config={"configurable": {"user_id": "u1"}})
    assert given["configurable_user_id"] == "u1"
    assistant = await client.assistants.create("whoami", config={"configurable": {"user_id": "u2"}})
    assert (await client.runs.wait(None, assistant["assistant_id"], input={}))["configurable_user_id"] == "u2"


# ---- failures -------------------------------------------------------------------------------------------------


async def test_failing_node(client, http):
    thread_id = await new_thread(client)
    with pytest.raises(Exception, match="ValueError: intentional failure in node boom"):
        await client.runs.wait(thread_id, "failing", input={})
    assert (await client.runs.list(thread_id))[0]["status"] == "error"
    # what ran before the failure is kept
    assert (await client.threads.get_state(thread_id))["values"] == {"reached": "ok"}

    response = await http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "failing", "input": {}})
    assert response.status_code == 200
    assert response.json() == {"__error__": {"error": "ValueError", "message": "intentional failure in node boom"}}

    # joined while it is still queued behind a slow run, the failure comes back as __error__
    await client.runs.create(thread_id, "slow", input={"steps": 1, "delay": 0.3})
    run = await client.runs.create(thread_id, "failing", input={})
    joined = await http.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
    assert joined.json() == {"__error__": {"error": "ValueError", "message": "intentional failure in node boom"}}
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "error"


# ---- multitasking ---------------------------------------------------------------------------------------------


async def test_multitask_reject(client, http):
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "slow", input={"steps": 10, "delay": 0.1})
    await wait_status(client, thread_id, run["run_id"], "running")
    with pytest.raises(ConflictError):
        await client.runs.create(thread_id, "echo", input={}, multitask_strategy="reject")
    response = await http.post(
        f"/threads/{thread_id}/runs/wait", json={"assistant_id": "echo", "input": {}, "multitask_strategy": "reject"}
    )
    assert response.status_code == 409
    assert "busy" in response.json()["detail"]
    assert [r["run_id"] for r in await client.runs.list(thread_id)] == [run["run_id"]]
    await client.runs.cancel(thread_id, run["run_id"], wait=True)
    # once idle, reject lets a run through
    assert (await client.runs.wait(thread_id, "echo", input=human("now"), multitask_strategy="reject"))["turns"] == 1


async def test_runs_created_at_once_on_an_idle_thread_take_turns(client, server_url):
    """Eight clients create runs on one idle thread at the same moment: they run one at a time, every run's writes
    are kept, and with `reject` exactly one is accepted (on Postgres they all used to start together)."""
    clients = [get_client(url=server_url, api_key=None) for _ in range(8)]
    try:
        thread_id = await new_thread(client)
        created = await asyncio.gather(*(
            sdk.runs.create(thread_id, "slow", input={"steps": 2, "delay": 0.05, "label": f"r{i}"}, multitask_strategy="enqueue")
            for i, sdk in enumerate(clients)
        ))
        assert max(await _running_at_once(client, thread_id)) == 1
        assert {(await client.runs.get(thread_id, run["run_id"]))["status"] for run in created} == {"success"}
        log = (await client.threads.get_state(thread_id))["values"]["log"]
        assert sorted(log) == sorted(f"r{i}:{step}" for i in range(8) for step in (1, 2))

        idle = await new_thread(client)
        outcomes = await asyncio.gather(*(
            sdk.runs.create(idle, "slow", input={"steps": 2, "delay": 0.05}, multitask_strategy="reject")
            for sdk in clients
        ), return_exceptions=True)
        assert sum(isinstance(outcome, ConflictError) for outcome in outcomes) == 7, outcomes
        assert len(await client.runs.list(idle)) == 1
    finally:
        for sdk in clients:
            await sdk.http.client.aclose()


async def test_a_burst_of_interrupting_runs_leaves_the_newest(client, server_url):
    """Eight clients send multitask_strategy=interrupt to a busy thread at once: each stops the runs created before
    it, so only the newest runs to the end, as in langgraph-api (they used to run one after another)."""
    clients = [get_client(url=server_url, api_key=None) for _ in range(8)]
    try:
        thread_id = await new_thread(client)
        first = await client.runs.create(thread_id, "slow", input={"steps": 50, "delay": 0.05, "label": "first"})
        await wait_status(client, thread_id, first["run_id"], "running")
        await asyncio.gather(*(
            sdk.runs.create(thread_id, "slow", input={"steps": 2, "delay": 0.05, "label": f"r{i}"}, multitask_strategy="interrupt")
            for i, sdk in enumerate(clients)
        ))
        while {"pending", "running"} & {run["status"] for run in await client.runs.list(thread_id, limit=100)}:
            await asyncio.sleep(0.05)
        runs = await client.runs.list(thread_id, limit=100)  # newest first
        assert [run["status"] for run in runs] == ["success"] + ["interrupted"] * 8, [(r["status"], r["kwargs"]["input"]["label"], r["created_at"]) for r in runs]
    finally:
        for sdk in clients:
            await sdk.http.client.aclose()


async def _running_at_once(client, thread_id: str) -> list[int]:
    """How many of the thread's runs were running, sampled until none is pending or running."""
    seen = []
    while True:
        statuses = [run["status"] for run in await client.runs.list(thread_id, limit=100)]
        seen.append(statuses.count("running"))
        if not {"pending", "running"} & set(statuses):
            return seen
        await asyncio.sleep(0.02)


async def test_multitask_enqueue_runs_in_order(client):
    thread_id = await new_thread(client)
    runs = [
        await client.runs.create(thread_id, "slow", input={"steps": 2, "delay": 0.05, "label": label})
        for label in ("a", "b", "c")
    ]
    assert [r["multitask_strategy"] for r in runs] == ["enqueue"] * 3
    output = await client.runs.join(thread_id, runs[-1]["run_id"])
    assert output["log"] == ["a:1", "a:2", "b:1", "b:2", "c:1", "c:2"]
    assert [r["status"] for r in await client.runs.list(thread_id)] == ["success"] * 3


async def test_multitask_interrupt(client):
    thread_id = await new_thread(client)
    first = await client.runs.create(thread_id, "slow", input={"steps": 100, "delay": 0.05, "label": "first"})
    await wait_status(client, thread_id, first["run_id"], "running")
    await asyncio.sleep(0.2)
    second = await client.runs.create(
        thread_id, "slow", input={"steps": 1, "delay": 0, "label": "second"}, multitask_strategy="interrupt"
    )
    output = await client.runs.join(thread_id, second["run_id"])
    assert (await client.runs.get(thread_id, first["run_id"]))["status"] == "interrupted"
    assert output["log"][-1] == "second:1"
    assert output["log"][0] == "first:1"  # the interrupted run's steps stay


async def test_multitask_rollback(client):
    thread_id = await new_thread(client)
    first = await client.runs.create(thread_id, "slow", input={"steps": 100, "delay": 0.05, "label": "first"})
    await wait_status(client, thread_id, first["run_id"], "running")
    await asyncio.sleep(0.2)
    second = await client.runs.create(
        thread_id, "slow", input={"steps": 1, "delay": 0, "label": "second"}, multitask_strategy="rollback"
    )
    output = await client.runs.join(thread_id, second["run_id"])
    assert output["log"] == ["second:1"]
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, first["run_id"])
