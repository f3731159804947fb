"""Threads: lifecycle, search/count, copy, state reads and edits, history, status."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import uuid
from pathlib import Path

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import BadRequestError, ConflictError, NotFoundError, UnprocessableEntityError

from tests.server.helpers import default_assistant_id, human, new_thread, tag, texts, wait_status


async def _echo_thread(client, *messages: str, **create) -> str:
    thread_id = await new_thread(client, **create)
    for text in messages:
        await client.runs.wait(thread_id, "echo", input=human(text))
    return thread_id


# ---- create / get / update / delete ---------------------------------------------------------------------------


async def test_new_thread_shape(client):
    marker = tag()
    thread = await client.threads.create(metadata={"marker": marker, "n": 1})
    uuid.UUID(thread["thread_id"])
    assert thread["metadata"] == {"marker": marker, "n": 1}
    assert thread["status"] == "idle"
    assert thread["values"] == {}
    assert thread["interrupts"] == {}
    for key in ("created_at", "updated_at", "state_updated_at"):
        assert thread[key].endswith("+00:00")
    assert await client.threads.get(thread["thread_id"]) == thread


async def test_create_with_id_and_if_exists(client):
    thread_id = str(uuid.uuid4())
    created = await client.threads.create(thread_id=thread_id, metadata={"v": 1})
    assert created["thread_id"] == thread_id
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread_id)
    existing = await client.threads.create(thread_id=thread_id, metadata={"v": 2}, if_exists="do_nothing")
    assert existing["metadata"] == {"v": 1}
    with pytest.raises(UnprocessableEntityError):
        await client.threads.create(thread_id="not-a-uuid")


async def test_create_with_graph_id_stamps_metadata(client):
    thread = await client.threads.create(graph_id="echo", metadata={"a": 1})
    assert thread["metadata"] == {"a": 1, "graph_id": "echo"}


async def test_create_with_supersteps_makes_state_without_running(client):
    thread = await client.threads.create(
        graph_id="echo",
        supersteps=[
            {"updates": [{"values": {"messages": [{"role": "user", "content": "seeded"}], "note": "n"}, "as_node": "echo"}]},
            {"updates": [{"values": {"turns": 5}, "as_node": "tally"}]},
        ],
    )
    thread_id = thread["thread_id"]
    assert thread["values"]["turns"] == 5
    assert thread["values"]["note"] == "n"
    assert texts(thread["values"]) == ["seeded"]
    assert thread["status"] == "idle"
    assert await client.runs.list(thread_id) == []
    state = await client.threads.get_state(thread_id)
    assert state["next"] == []
    assert state["metadata"]["source"] == "update"
    history = await client.threads.get_history(thread_id)
    assert [h["values"].get("turns") for h in history] == [5, 0]
    # the seeded thread then runs like any other
    output = await client.runs.wait(thread_id, "echo", input=human("next"))
    assert texts(output) == ["seeded", "next", "echo: next"]
    assert output["turns"] == 6


async def test_supersteps_leaving_a_pending_node_mark_the_thread_interrupted(client):
    thread = await client.threads.create(
        graph_id="echo", supersteps=[{"updates": [{"values": {"note": "half"}, "as_node": "echo"}]}]
    )
    assert thread["status"] == "interrupted"
    assert (await client.threads.get_state(thread["thread_id"]))["next"] == ["tally"]
    output = await client.runs.wait(thread["thread_id"], "echo", input=None)
    assert output == {"messages": [], "note": "half", "turns": 1}


async def test_bad_supersteps_leave_no_thread(client):
    thread_id = str(uuid.uuid4())
    with pytest.raises(BadRequestError):
        await client.threads.create(
            thread_id=thread_id,
            graph_id="echo",
            supersteps=[{"updates": [{"values": {"note": "x"}, "as_node": "no_such_node"}]}],
        )
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)
    with pytest.raises(BadRequestError):  # a value `turns`' reducer cannot add; it was a 500
        await client.threads.create(
            thread_id=thread_id, graph_id="echo", supersteps=[{"updates": [{"values": {"turns": "a"}, "as_node": "echo"}]}]
        )
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)
    with pytest.raises(UnprocessableEntityError):  # no graph to apply them to
        await client.threads.create(thread_id=thread_id, supersteps=[{"updates": [{"values": {}, "as_node": "echo"}]}])
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)


async def test_get_returns_values_and_interrupts(client):
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "hitl", input={"topic": "cats"})
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    assert thread["values"] == {"messages": [], "topic": "cats", "draft": "draft for cats"}
    [(task_id, interrupts)] = thread["interrupts"].items()
    assert interrupts[0]["value"] == {"question": "approve?", "draft": "draft for cats"}
    state = await client.threads.get_state(thread_id)
    assert state["tasks"][0]["id"] == task_id


async def test_get_missing_is_404(client):
    with pytest.raises(NotFoundError):
        await client.threads.get(str(uuid.uuid4()))


async def test_update_merges_metadata(client):
    thread = await client.threads.create(metadata={"a": 1, "b": {"x": 1}})
    updated = await client.threads.update(thread["thread_id"], metadata={"b": {"y": 2}, "c": 3})
    assert updated["metadata"] == {"a": 1, "b": {"y": 2}, "c": 3}  # top-level merge, as langgraph-api
    assert updated["updated_at"] >= thread["updated_at"]
    assert (await client.threads.get(thread["thread_id"]))["metadata"] == updated["metadata"]
    with pytest.raises(NotFoundError):
        await client.threads.update(str(uuid.uuid4()), metadata={"a": 1})


async def test_update_return_minimal(client, http):
    thread = await client.threads.create()
    response = await http.patch(
        f"/threads/{thread['thread_id']}", json={"metadata": {"quiet": True}}, headers={"Prefer": "return=minimal"}
    )
    assert response.status_code == 204
    assert response.content == b""
    assert await client.threads.update(thread["thread_id"], metadata={"sdk": 1}, return_minimal=True) is None
    assert (await client.threads.get(thread["thread_id"]))["metadata"] == {"quiet": True, "sdk": 1}


async def test_delete_removes_thread_runs_and_checkpoints(client, http):
    thread_id = await _echo_thread(client, "one", "two")
    runs = await client.runs.list(thread_id)
    assert len(runs) == 2
    response = await http.delete(f"/threads/{thread_id}")
    assert response.status_code == 204
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, runs[0]["run_id"])
    # the same id again, on the same graph: nothing of the old checkpoints is visible
    again = await client.threads.create(thread_id=thread_id, graph_id="echo")
    assert again["values"] == {}
    assert (await client.threads.get_state(thread_id))["values"] == {}
    assert await client.threads.get_history(thread_id) == []
    output = await client.runs.wait(thread_id, "echo", input=human("fresh"))
    assert texts(output) == ["fresh", "echo: fresh"] and output["turns"] == 1
    with pytest.raises(NotFoundError):
        await client.threads.delete(str(uuid.uuid4()))


async def test_delete_busy_thread_stops_its_run(client):
    """Its run stops; a client streaming it gets an error event last, as from langgraph-api (whose stream then
    finds the run gone), rather than an end that looks like the run's own."""
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "slow", input={"steps": 50, "delay": 0.1})
    await wait_status(client, thread_id, run["run_id"], "running")
    parts = []

    async def follow() -> None:
        async for part in client.runs.join_stream(thread_id, run["run_id"]):
            parts.append(part)

    following = asyncio.create_task(follow())
    while not parts:
        await asyncio.sleep(0.05)
    await client.threads.delete(thread_id)
    await asyncio.wait_for(following, 10)
    assert parts[-1].event == "error", parts
    assert parts[-1].data["message"].startswith("404: Run not found"), parts
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)


async def test_deletes_at_once_of_a_busy_thread_all_succeed(client, server_url):
    """Ten clients delete a thread with a running run and a queued one at the same moment: each gets a 204 or
    a 404 (on Postgres some got 500s: a deadlock between a delete and a cancel taking their locks in turn)."""
    thread_id = await new_thread(client)
    running = await client.runs.create(thread_id, "slow", input={"steps": 20, "delay": 0.5})
    queued = await client.runs.create(thread_id, "slow", input={"steps": 2, "delay": 0.1}, multitask_strategy="enqueue")
    joined = asyncio.create_task(client.runs.join(thread_id, queued["run_id"]))
    streamed = asyncio.create_task(_drain(client.runs.join_stream(thread_id, running["run_id"], stream_mode="updates")))
    await asyncio.sleep(1.5)
    clients = [get_client(url=server_url, api_key=None) for _ in range(10)]

    async def delete(sdk) -> int:
        try:
            await sdk.threads.delete(thread_id)
            return 204
        except NotFoundError:
            return 404

    try:
        answers = await asyncio.gather(*(delete(sdk) for sdk in clients))
    finally:
        for sdk in clients:
            await sdk.http.client.aclose()
    assert set(answers) <= {204, 404} and 204 in answers, answers
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)
    await asyncio.wait_for(asyncio.gather(joined, streamed, return_exceptions=True), 15)  # the waiting join ends too


async def _drain(stream) -> None:
    async for _ in stream:
        pass


# ---- search / count -------------------------------------------------------------------------------------------


async def test_search_by_metadata_values_ids_status(client):
    marker = tag()
    plain = await client.threads.create(metadata={"marker": marker, "kind": "plain"})
    ran = await _echo_thread(client, "hello", metadata={"marker": marker, "kind": "ran"})
    paused = await new_thread(client, metadata={"marker": marker, "kind": "paused"})
    await client.runs.wait(paused, "hitl", input={"topic": marker})

    def ids(found):
        return {t["thread_id"] for t in found}

    assert ids(await client.threads.search(metadata={"marker": marker})) == {plain["thread_id"], ran, paused}
    assert ids(await client.threads.search(metadata={"marker": marker, "kind": "ran"})) == {ran}
    assert ids(await client.threads.search(metadata={"marker": marker, "graph_id": "hitl"})) == {paused}
    assert ids(await client.threads.search(values={"topic": marker})) == {paused}
    assert ids(await client.threads.search(metadata={"marker": marker}, values={"turns": 1})) == {ran}
    assert ids(await client.threads.search(metadata={"marker": marker}, status="interrupted")) == {paused}
    assert ids(await client.threads.search(metadata={"marker": marker}, status="idle")) == {plain["thread_id"], ran}
    assert ids(await client.threads.search(ids=[ran, paused, str(uuid.uuid4())])) == {ran, paused}
    assert ids(await client.threads.search(ids=[ran], metadata={"kind": "plain"})) == set()


async def test_search_extracts_values_by_path(client, http):
    marker = tag()
    ran = await _echo_thread(client, "hello", metadata={"marker": marker, "tags": ["a", "b"]})
    paths = {
        "last": "values.messages[-1].content",
        "first_kind": "values.messages[0].type",
        "turns": "values.turns",
        "second_tag": "metadata.tags[1]",
        "graph": "metadata.graph_id",
        "beyond": "values.messages[5].content",
        "missing": "values.nothing.here",
        "not_a_list": "values.turns[0]",
    }
    [found] = await client.threads.search(metadata={"marker": marker}, extract=paths)
    assert found["thread_id"] == ran and found["values"]["turns"] == 1
    assert found["extracted"] == {
        "last": "echo: hello", "first_kind": "human", "turns": 1, "second_tag": "b", "graph": "echo",
        "beyond": None, "missing": None, "not_a_list": None,
    }
    # With `select`, the extraction still reads the whole thread.
    [small] = await client.threads.search(metadata={"marker": marker}, select=["thread_id"], extract={"last": paths["last"]})
    assert small == {"thread_id": ran, "extracted": {"last": "echo: hello"}}
    [plain] = await client.threads.search(metadata={"marker": marker})
    assert "extracted" not in plain

    for bad, field_hint in [
        ({f"k{i}": "values.x" for i in range(11)}, "at most 10"),
        ({"status": "values.x"}, "thread field"),
        ({"not-an-identifier": "values.x"}, "identifier"),
        ({"k": "thread_id"}, "must start with"),
        ({"k": ""}, "must start with"),
    ]:
        refused = await http.post("/threads/search", json={"extract": bad})
        assert refused.status_code == 422, bad
        assert refused.json()["detail"][0]["loc"] == ["body", "extract"] and field_hint in refused.text


async def test_search_sort_and_pagination(client, http):
    marker = tag()
    made = [(await client.threads.create(metadata={"marker": marker, "i": i}))["thread_id"] for i in range(3)]
    # uuid7, as langgraph-api mints them: sorting by id follows creation too
    assert {uuid.UUID(t).version for t in made} == {7}
    by_id = await client.threads.search(metadata={"marker": marker}, sort_by="thread_id", sort_order="asc")
    assert [t["thread_id"] for t in by_id] == made
    assert [t["thread_id"] for t in await client.threads.search(metadata={"marker": marker})] == made[::-1]
    ascending = await client.threads.search(metadata={"marker": marker}, sort_by="created_at", sort_order="asc")
    assert [t["thread_id"] for t in ascending] == made
    # touching a thread moves it to the front when sorted by updated_at
    await client.threads.update(made[0], metadata={"touched": True})
    by_update = await client.threads.search(metadata={"marker": marker}, sort_by="updated_at", sort_order="desc")
    assert by_update[0]["thread_id"] == made[0]
    page = await client.threads.search(metadata={"marker": marker}, sort_by="created_at", sort_order="asc", limit=1, offset=1)
    assert [t["thread_id"] for t in page] == [made[1]]

    first = await http.post("/threads/search", json={"metadata": {"marker": marker}, "limit": 2})
    assert first.headers["x-pagination-total"] == "3"
    assert first.headers["x-pagination-next"] == "2"
    last = await http.post("/threads/search", json={"metadata": {"marker": marker}, "limit": 2, "offset": 2})
    assert "x-pagination-next" not in last.headers
    assert len(last.json()) == 1
    # A page of none would name its own offset as the next page, and a client following it would never stop.
    for path in ("/threads/search", "/assistants/search", "/runs/crons/search", f"/threads/{made[0]}/history"):
        empty = await http.post(path, json={"limit": 0})
        assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "limit"], path
    selected = await client.threads.search(metadata={"marker": marker}, select=["thread_id", "status"], limit=1)
    assert set(selected[0]) == {"thread_id", "status"}
    with pytest.raises(UnprocessableEntityError) as refused:
        await client.threads.search(select=["thread_id", "secrets"])
    assert refused.value.response.json()["detail"][0]["loc"] == ["body", "select", 1]


async def test_count(client, http):
    marker = tag()
    await client.threads.create(metadata={"marker": marker})
    await _echo_thread(client, "x", metadata={"marker": marker})
    assert await client.threads.count(metadata={"marker": marker}) == 2
    assert await client.threads.count(metadata={"marker": marker, "graph_id": "echo"}) == 1
    assert await client.threads.count(metadata={"marker": marker}, status="busy") == 0
    assert await client.threads.count(metadata={"marker": marker}, values={"turns": 1}) == 1
    raw = await http.post("/threads/count", json={"metadata": {"marker": marker}})
    assert raw.content == b"2"


# ---- copy -----------------------------------------------------------------------------------------------------


async def test_copy_is_an_independent_thread(client):
    marker = tag()
    source = await _echo_thread(client, "one", metadata={"marker": marker})
    copy = await client.threads.copy(source)
    assert copy["thread_id"] != source
    assert copy["metadata"] == (await client.threads.get(source))["metadata"]
    assert copy["values"] == (await client.threads.get(source))["values"]
    source_history = await client.threads.get_history(source)
    copy_history = await client.threads.get_history(copy["thread_id"])
    assert [h["values"] for h in copy_history] == [h["values"] for h in source_history]
    assert all(h["checkpoint"]["thread_id"] == copy["thread_id"] for h in copy_history)

    await client.runs.wait(copy["thread_id"], "echo", input=human("copy only"))
    await client.runs.wait(source, "echo", input=human("source only"))
    assert texts((await client.threads.get_state(copy["thread_id"]))["values"]) == [
        "one", "echo: one", "copy only", "echo: copy only"
    ]
    assert texts((await client.threads.get_state(source))["values"]) == [
        "one", "echo: one", "source only", "echo: source only"
    ]
    with pytest.raises(NotFoundError):
        await client.threads.copy(str(uuid.uuid4()))


async def test_copy_of_interrupted_thread_can_be_resumed_separately(client):
    source = await new_thread(client)
    await client.runs.wait(source, "hitl", input={"topic": "t"})
    copy = await client.threads.copy(source)
    assert copy["status"] == "interrupted"
    done = await client.runs.wait(copy["thread_id"], "hitl", command={"resume": "copy says yes"})
    assert done["decision"] == "copy says yes"
    assert (await client.threads.get(source))["status"] == "interrupted"


# ---- state ----------------------------------------------------------------------------------------------------


async def test_state_of_a_thread_never_run(client):
    thread_id = await new_thread(client)
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {}
    assert state["next"] == []
    assert state["tasks"] == []
    assert await client.threads.get_history(thread_id) == []


async def test_state_latest_and_at_checkpoint(client):
    thread_id = await _echo_thread(client, "first", "second")
    latest = await client.threads.get_state(thread_id)
    assert texts(latest["values"]) == ["first", "echo: first", "second", "echo: second"]
    assert latest["values"]["turns"] == 2
    assert latest["next"] == []
    assert latest["checkpoint"]["thread_id"] == thread_id
    assert latest["checkpoint"]["checkpoint_ns"] == ""
    assert latest["metadata"]["graph_id"] == "echo"
    assert latest["parent_checkpoint"]["checkpoint_id"] != latest["checkpoint"]["checkpoint_id"]

    history = await client.threads.get_history(thread_id, limit=100)
    after_first = next(h for h in history if h["values"].get("turns") == 1 and not h["next"])
    checkpoint_id = after_first["checkpoint"]["checkpoint_id"]
    by_id = await client.threads.get_state(thread_id, checkpoint_id=checkpoint_id)  # GET /state/{id}
    assert texts(by_id["values"]) == ["first", "echo: first"]
    assert by_id["checkpoint"]["checkpoint_id"] == checkpoint_id
    by_body = await client.threads.get_state(thread_id, checkpoint={"checkpoint_id": checkpoint_id})  # POST
    assert by_body == by_id
    midway = next(h for h in history if h["next"] == ["tally"])
    state = await client.threads.get_state(thread_id, checkpoint=midway["checkpoint"])
    assert state["next"] == ["tally"]
    assert [t["name"] for t in state["tasks"]] == ["tally"]


async def test_state_with_subgraphs(client):
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "subgraph", input={"value": 1}, interrupt_before=["child"])
    flat = await client.threads.get_state(thread_id)
    [task] = flat["tasks"]
    assert task["name"] == "child"
    assert task["state"] is None
    assert task["checkpoint"]["checkpoint_ns"] == f"child:{task['id']}"
    nested = await client.threads.get_state(thread_id, subgraphs=True)
    [task] = nested["tasks"]
    assert task["state"]["checkpoint"]["checkpoint_ns"] == f"child:{task['id']}"

    output = await client.runs.wait(thread_id, "subgraph", input=None)
    assert output == {"trail": ["inner_a", "inner_b", "after"], "value": 20}
    # the child's own checkpoints, the way Studio opens a subgraph
    child = await client.threads.get_state(thread_id, checkpoint={"checkpoint_ns": f"child:{task['id']}"})
    assert child["values"] == {"trail": ["inner_a", "inner_b"], "value": 20}
    assert child["checkpoint"]["checkpoint_ns"] == f"child:{task['id']}"


async def test_update_state_values_and_as_node(client):
    thread_id = await _echo_thread(client, "hi")
    result = await client.threads.update_state(thread_id, {"note": "edited", "turns": 10})
    checkpoint = result["checkpoint"]
    assert checkpoint["thread_id"] == thread_id and checkpoint["checkpoint_id"]
    assert result["configurable"] == checkpoint and result["checkpoint_id"] == checkpoint["checkpoint_id"]
    state = await client.threads.get_state(thread_id)
    assert state["checkpoint"]["checkpoint_id"] == checkpoint["checkpoint_id"]
    assert state["values"]["note"] == "edited"
    assert state["values"]["turns"] == 11  # the reducer adds
    assert state["metadata"]["source"] == "update"
    assert state["metadata"]["graph_id"] == "echo"  # as langgraph-api writes it: history filters find edits too
    thread = await client.threads.get(thread_id)
    assert thread["values"]["note"] == "edited"  # the thread row follows edits too

    # as if `echo` had just run: `tally` is next, and the thread waits for it
    await client.threads.update_state(thread_id, {"note": "as echo"}, as_node="echo")
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["tally"]
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    output = await client.runs.wait(thread_id, "echo", input=None)
    assert output["turns"] == 12 and output["note"] == "as echo"
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_update_state_with_values_a_reducer_cannot_take_is_400(client, http):
    thread_id = await _echo_thread(client, "hi")
    before = await client.threads.get_state(thread_id)
    for values in ({"turns": "x"}, {"messages": 5}):  # "x" added to a number; 5 is no message list
        refused = await http.post(f"/threads/{thread_id}/state", json={"values": values})
        assert refused.status_code == 400 and refused.json()["detail"].startswith("cannot update state: "), values
    assert (await client.threads.get_state(thread_id))["checkpoint"] == before["checkpoint"]  # nothing written


async def test_update_state_of_thread_without_graph_is_400(client):
    thread_id = await new_thread(client)
    with pytest.raises(BadRequestError):
        await client.threads.update_state(thread_id, {"note": "x"})


async def test_update_state_while_a_run_is_in_flight_is_409(client):
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "slow", input={"steps": 50, "delay": 0.1})
    await wait_status(client, thread_id, run["run_id"], "running")
    with pytest.raises(ConflictError) as refused:
        await client.threads.update_state(thread_id, {"done": 99})
    assert run["run_id"] in str(refused.value)
    assert all(s["metadata"].get("source") != "update" for s in await client.threads.get_history(thread_id, limit=100))
    await client.runs.cancel(thread_id, run["run_id"], wait=True)
    await client.threads.update_state(thread_id, {"done": 99})  # free again: the edit is taken


async def test_update_state_copy_reruns_from_a_checkpoint(client):
    """Studio's "Re-run from here": values null, as_node __copy__, checkpoint_id."""
    thread_id = await _echo_thread(client, "one")
    history = await client.threads.get_history(thread_id)
    before_tally = next(h for h in history if h["next"] == ["tally"])
    result = await client.threads.update_state(
        thread_id, None, as_node="__copy__", checkpoint_id=before_tally["checkpoint"]["checkpoint_id"]
    )
    head = await client.threads.get_state(thread_id)
    assert head["checkpoint"]["checkpoint_id"] == result["checkpoint"]["checkpoint_id"]
    assert head["checkpoint"]["checkpoint_id"] != before_tally["checkpoint"]["checkpoint_id"]
    assert head["values"] == before_tally["values"]
    assert head["next"] == ["tally"]
    assert len(await client.threads.get_history(thread_id, limit=100)) == len(history) + 1
    output = await client.runs.wait(thread_id, "echo", input=None)
    assert output["turns"] == 1  # tally ran once more on the copied state, not on the finished one
    assert texts(output) == ["one", "echo: one"]


# ---- history --------------------------------------------------------------------------------------------------


async def test_history_post_and_get(client, http, backend):
    thread_id = await _echo_thread(client, "a", "b")
    history = await client.threads.get_history(thread_id, limit=100)
    # per run: input, before echo, before tally, final → 4 checkpoints each, newest first
    assert len(history) == 8
    steps = [h["metadata"]["step"] for h in history]
    assert steps == sorted(steps, reverse=True)
    assert history[0]["checkpoint"] == (await client.threads.get_state(thread_id))["checkpoint"]
    assert [h["parent_checkpoint"]["checkpoint_id"] for h in history[:-1]] == [
        h["checkpoint"]["checkpoint_id"] for h in history[1:]
    ]
    assert history[-1]["parent_checkpoint"] is None

    assert len(await client.threads.get_history(thread_id)) == 8  # default limit 10
    assert await client.threads.get_history(thread_id, limit=3) == history[:3]
    older = await client.threads.get_history(thread_id, before=history[2]["checkpoint"], limit=100)
    assert older == history[3:]
    assert await client.threads.get_history(thread_id, before=history[2]["checkpoint"]["checkpoint_id"], limit=2) == history[3:5]

    runs = await client.runs.list(thread_id)
    second_run = runs[0]["run_id"]
    of_second = await client.threads.get_history(thread_id, metadata={"run_id": second_run}, limit=100)
    assert len(of_second) == 4 and of_second == history[:4]
    inputs = await client.threads.get_history(thread_id, metadata={"source": "input"}, limit=100)
    assert len(inputs) == 2

    got = await http.get(f"/threads/{thread_id}/history", params={"limit": 2})
    assert got.status_code == 200
    assert got.json() == history[:2]
    got_before = await http.get(
        f"/threads/{thread_id}/history", params={"limit": 1, "before": history[0]["checkpoint"]["checkpoint_id"]}
    )
    assert got_before.json() == history[1:2]
    # A metadata key SQLite's checkpointer cannot query by is the caller's mistake, named; it was a 500.
    # (Postgres's queries JSON containment, which takes any key: nothing has it.)
    odd = await http.post(f"/threads/{thread_id}/history", json={"metadata": {"a b": 1}})
    if backend == "sqlite":
        assert odd.status_code == 422 and odd.json()["detail"].startswith("metadata: ")
    else:
        assert odd.status_code == 200 and odd.json() == []


async def _storage(http, thread_id: str) -> dict:
    got = await http.get(f"/threads/{thread_id}/storage")
    assert got.status_code == 200, got.text
    report = got.json()
    parts = report["checkpoints"]["bytes"] + report["channel_values"]["bytes"] + report["pending_writes"]["bytes"]
    assert report["total_bytes"] == parts
    by_channel = report["channel_values"]["by_channel"]
    assert report["channel_values"]["count"] == sum(c["versions"] for c in by_channel.values())
    assert report["channel_values"]["bytes"] == sum(c["bytes"] for c in by_channel.values())
    return report


async def test_storage_reports_what_the_checkpoints_hold(client, http):
    empty = await _storage(http, await new_thread(client))
    assert empty["total_bytes"] == 0
    assert empty["checkpoints"] == {"count": 0, "bytes": 0}
    assert empty["channel_values"]["by_channel"] == {}

    thread_id = await _echo_thread(client, "a", "b")
    before = await _storage(http, thread_id)
    assert before["thread_id"] == thread_id
    assert before["checkpoints"]["count"] == len(await client.threads.get_history(thread_id, limit=100)) == 8
    assert before["checkpoints"]["bytes"] > 0
    assert before["channel_values"]["by_channel"]["messages"]["versions"] >= 2
    # A large message (random, so that Postgres cannot compress it away) shows in the messages channel.
    await client.runs.wait(thread_id, "echo", input=human(base64.b64encode(os.urandom(15_000)).decode()))
    after = await _storage(http, thread_id)
    assert after["checkpoints"]["count"] == 12
    grown = after["channel_values"]["by_channel"]["messages"]["bytes"] - before["channel_values"]["by_channel"]["messages"]["bytes"]
    assert grown > 15_000
    assert after["total_bytes"] > before["total_bytes"] + 15_000


async def test_storage_counts_pending_writes_of_an_interrupted_thread(client, http):
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "hitl", input={"topic": "t"})
    paused = await _storage(http, thread_id)
    assert paused["pending_writes"]["count"] >= 1 and paused["pending_writes"]["bytes"] > 0


async def test_storage_of_missing_or_malformed_thread(http):
    assert (await http.get(f"/threads/{uuid.uuid4()}/storage")).status_code == 404
    malformed = await http.get("/threads/not-a-uuid/storage")
    assert malformed.status_code == 422 and "thread_id" in malformed.text


# ---- metadata stamping and status -----------------------------------------------------------------------------


async def test_first_run_stamps_graph_and_assistant(client):
    assistant = await client.assistants.create(graph_id="echo")
    thread = await client.threads.create(metadata={"own": "kept"})
    assert "graph_id" not in thread["metadata"]
    await client.runs.wait(thread["thread_id"], assistant["assistant_id"], input=human("x"))
    metadata = (await client.threads.get(thread["thread_id"]))["metadata"]
    assert metadata == {"own": "kept", "graph_id": "echo", "assistant_id": assistant["assistant_id"]}
    # Agent Chat UI lists threads by exactly this metadata
    found = await client.threads.search(metadata={"assistant_id": assistant["assistant_id"]})
    assert [t["thread_id"] for t in found] == [thread["thread_id"]]

    by_name = await new_thread(client)
    await client.runs.wait(by_name, "echo", input=human("x"))
    assert (await client.threads.get(by_name))["metadata"]["assistant_id"] == default_assistant_id("echo")


async def test_thread_made_by_a_run_takes_its_metadata(client):
    """As langgraph-api: a thread made by its run (if_not_exists=create, or a kept stateless run) starts with the
    run's metadata, its config's under its own, beside the graph and assistant stamp (which win); an existing
    thread does not take it."""
    echo = default_assistant_id("echo")
    thread_id = str(uuid.uuid4())
    await client.runs.wait(
        thread_id, "echo", input=human("x"), if_not_exists="create",
        metadata={"m": 1, "graph_id": "not-echo"}, config={"metadata": {"cm": 2, "m": 0}},
    )
    made = (await client.threads.get(thread_id))["metadata"]
    assert made == {"graph_id": "echo", "assistant_id": echo, "cm": 2, "m": 1}

    run = await client.runs.create(None, "echo", input=human("x"), on_completion="keep", metadata={"s": 1})
    await client.runs.join(run["thread_id"], run["run_id"])
    kept = (await client.threads.get(run["thread_id"]))["metadata"]
    assert kept == {"graph_id": "echo", "assistant_id": echo, "s": 1}

    existing = await client.threads.create(metadata={"own": 1})
    await client.runs.wait(existing["thread_id"], "echo", input=human("x"), metadata={"m": 1})
    after = (await client.threads.get(existing["thread_id"]))["metadata"]
    assert after == {"own": 1, "graph_id": "echo", "assistant_id": echo}


async def test_thread_config_is_what_its_runs_set(client):
    """As langgraph-api: a run that takes a thread sets its config to the assistant's under the thread's under the
    run's, but `configurable` only from the assistant under the thread's (never the run's own). Later runs see that
    configurable under theirs, so the thread keeps the configurable of the assistant that first ran it; a run
    queued behind another changes nothing; a copy starts empty."""
    thread_id = await new_thread(client)
    assert (await client.threads.get(thread_id))["config"] == {}
    hi = await client.assistants.create("configurable", config={"configurable": {"greeting": "Hi"}})
    ran = await client.runs.wait(
        thread_id, hi["assistant_id"], input={"name": "x"},
        config={"configurable": {"secret": "s"}, "tags": ["one"], "recursion_limit": 7},
    )
    assert ran["greeting"] == "Hi, x!"
    expected = {"configurable": {"greeting": "Hi"}, "tags": ["one"], "recursion_limit": 7}
    assert (await client.threads.get(thread_id))["config"] == expected
    assert (await client.threads.search(ids=[thread_id]))[0]["config"] == expected

    # the graph's default assistant (no configurable) and another assistant go on with the thread's greeting
    assert (await client.runs.wait(thread_id, "configurable", input={"name": "y"}))["greeting"] == "Hi, y!"
    hey = await client.assistants.create("configurable", config={"configurable": {"greeting": "Hey"}})
    assert (await client.runs.wait(thread_id, hey["assistant_id"], input={"name": "z"}))["greeting"] == "Hi, z!"
    # a run's own configurable wins for that run, and is not kept
    own = await client.runs.wait(thread_id, "configurable", input={"name": "w"}, config={"configurable": {"greeting": "Yo"}})
    assert own["greeting"] == "Yo, w!"
    assert (await client.threads.get(thread_id))["config"] == expected
    assert (await client.threads.copy(thread_id))["config"] == {}

    # context is not carried: a graph reading only its context gets its own assistant's
    context_thread = await new_thread(client)
    ctx = await client.assistants.create("context_only", context={"greeting": "Hi"})
    assert (await client.runs.wait(context_thread, ctx["assistant_id"], input={"name": "x"}))["greeting"] == "Hi, x!"
    assert (await client.threads.get(context_thread))["config"] == {"configurable": {"greeting": "Hi"}}
    assert (await client.runs.wait(context_thread, "context_only", input={"name": "x"}))["greeting"] == "Hello, x!"

    # a thread made by its run: the run's config without its configurable, the assistant's configurable
    made_id = str(uuid.uuid4())
    await client.runs.wait(
        made_id, "configurable", input={"name": "q"}, if_not_exists="create",
        config={"metadata": {"cm": 1}, "configurable": {"k": 1}, "run_name": "rn"},
    )
    assert (await client.threads.get(made_id))["config"] == {"metadata": {"cm": 1}, "run_name": "rn", "configurable": {}}


async def test_thread_config_is_kept_by_a_run_queued_behind_another(client):
    thread_id = await new_thread(client)
    first = await client.runs.create(thread_id, "slow", input={"steps": 2, "delay": 0.2}, config={"tags": ["first"]})
    queued = await client.runs.create(
        thread_id, "slow", input={"steps": 1, "delay": 0}, config={"tags": ["queued"]}, multitask_strategy="enqueue"
    )
    assert (await client.threads.get(thread_id))["config"] == {"configurable": {}, "tags": ["first"]}
    await client.runs.join(thread_id, first["run_id"])
    await client.runs.join(thread_id, queued["run_id"])
    assert (await client.threads.get(thread_id))["config"] == {"configurable": {}, "tags": ["first"]}


async def test_a_factory_builds_a_threads_graph_for_state_reads_from_the_threads_config(client):
    """As langgraph-api: reading or editing a thread's state builds its graph with the thread's config, so a
    factory sees what the thread's runs set (here the assistant's prefix and the run's tags)."""
    thread_id = await new_thread(client)
    made = await client.assistants.create("factory", config={"configurable": {"prefix": "made"}})
    await client.runs.wait(thread_id, made["assistant_id"], input=human("hi"), config={"tags": ["t"]})
    calls = _factory_calls()
    calls.clear()
    await client.threads.get_state(thread_id)
    await client.threads.get_history(thread_id)
    await client.threads.update_state(thread_id, {"messages": []})
    seen = [(c["configurable"].get("prefix"), c.get("tags")) for c in calls if c["configurable"].get("thread_id") == thread_id]
    assert seen == [("made", ["t"])] * 3


def _factory_calls() -> list[dict]:
    """The configs the test graphs' factory was called with, in this process (where the servers run)."""
    path = str(Path(__file__).parent.parent / "graphs" / "factory.py")
    modules = [m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == path]
    assert len(modules) == 1, modules
    return modules[0].CALLS


RESERVED = {"thread_id": "t", "assistant_id": "a", "run_id": "r", "cron_id": "c", "counters_since_delta_snapshot": 1}


async def test_reserved_metadata_keys_are_dropped_from_what_clients_write(client):
    """As langgraph-api: ids the server sets (and counters_since_delta_snapshot) are removed from the metadata a
    client writes — threads', assistants', runs', and their configs' — not refused; filters keep them."""
    given = {**RESERVED, "keep": 1}
    thread = await client.threads.create(metadata=dict(given))
    assert thread["metadata"] == {"keep": 1}
    assert (await client.threads.update(thread["thread_id"], metadata=dict(given)))["metadata"] == {"keep": 1}

    assistant = await client.assistants.create("echo", metadata=dict(given), config={"metadata": dict(given)})
    assert (assistant["metadata"], assistant["config"]["metadata"]) == ({"keep": 1}, {"keep": 1})
    updated = await client.assistants.update(assistant["assistant_id"], metadata=dict(given), config={"metadata": dict(given)})
    assert (updated["metadata"], updated["config"]["metadata"]) == ({"keep": 1}, {"keep": 1})

    run = await client.runs.create(
        thread["thread_id"], "echo", input=human("x"), metadata=dict(given), config={"metadata": {**RESERVED, "also": 2}}
    )
    await client.runs.join(thread["thread_id"], run["run_id"])
    stored = (await client.runs.get(thread["thread_id"], run["run_id"]))["metadata"]
    assert stored == {"created_by": "system", "graph_id": "echo", "assistant_id": default_assistant_id("echo"), "also": 2, "keep": 1}
    sent_back = run["kwargs"]["config"]["metadata"]
    assert sent_back["also"] == 2 and not any(sent_back.get(key) == value for key, value in RESERVED.items())
    assert (await client.threads.get(thread["thread_id"]))["metadata"]["assistant_id"] == default_assistant_id("echo")
    # a filter may still name them
    found = await client.threads.search(metadata={"assistant_id": default_assistant_id("echo"), "keep": 1}, ids=[thread["thread_id"]])
    assert [t["thread_id"] for t in found] == [thread["thread_id"]]


async def test_thread_statuses(client):
    thread_id = await new_thread(client)
    assert (await client.threads.get(thread_id))["status"] == "idle"

    run = await client.runs.create(thread_id, "slow", input={"steps": 3, "delay": 0.2})
    await wait_status(client, thread_id, run["run_id"], "running")
    assert (await client.threads.get(thread_id))["status"] == "busy"
    await client.runs.join(thread_id, run["run_id"])
    assert (await client.threads.get(thread_id))["status"] == "idle"

    failing = await new_thread(client)
    await client.runs.wait(failing, "failing", input={}, raise_error=False)
    assert (await client.threads.get(failing))["status"] == "error"
    # the next successful run clears it
    await client.runs.wait(failing, "echo", input=human("x"))
    assert (await client.threads.get(failing))["status"] == "idle"

    paused = await new_thread(client)
    await client.runs.wait(paused, "hitl", input={"topic": "t"})
    assert (await client.threads.get(paused))["status"] == "interrupted"
    await client.runs.wait(paused, "hitl", command={"resume": "ok"})
    assert (await client.threads.get(paused))["status"] == "idle"


async def test_thread_error_is_the_last_runs_error(client, http):
    """As langgraph-api: the thread carries the error of the last run that ended on it (the run's own error
    object), in every read and write answer, until a run ends without one or the state is edited."""
    failure = {"error": "ValueError", "message": "intentional failure in node boom"}
    created = await client.threads.create()
    thread_id = created["thread_id"]
    assert created["error"] is None
    await client.runs.wait(thread_id, "failing", input={}, raise_error=False)
    assert (await client.threads.get(thread_id))["error"] == failure
    assert (await client.threads.search(ids=[thread_id]))[0]["error"] == failure
    assert (await client.threads.update(thread_id, metadata={"seen": True}))["error"] == failure
    # a field `select` leaves out, and one it may not name (langgraph-api's list has no `error`)
    assert await client.threads.search(ids=[thread_id], select=["status"]) == [{"status": "error"}]
    refused = await http.post("/threads/search", json={"ids": [thread_id], "select": ["error"]})
    assert refused.status_code == 422
    assert (await client.threads.copy(thread_id))["error"] is None

    await client.runs.wait(thread_id, "echo", input=human("x"))
    assert (await client.threads.get(thread_id))["error"] is None

    edited = await new_thread(client)
    await client.runs.wait(edited, "failing", input={}, raise_error=False)
    await client.threads.update_state(edited, {"reached": "edited"})
    assert (await client.threads.get(edited))["error"] is None


async def test_failed_task_error_is_its_repr_once(client):
    """A failed task's error is the exception's repr as the checkpoint has it, not JSON-encoded a second time."""
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "failing", input={}, raise_error=False)
    expected = "ValueError('intentional failure in node boom')"
    state = await client.threads.get_state(thread_id)
    assert [(task["name"], task["error"]) for task in state["tasks"]] == [("boom", expected)]
    history = await client.threads.get_history(thread_id, limit=1)
    assert [task["error"] for task in history[0]["tasks"]] == [expected]


async def test_busy_while_queued_runs_remain(client):
    thread_id = await new_thread(client)
    first = await client.runs.create(thread_id, "slow", input={"steps": 2, "delay": 0.1, "label": "a"})
    second = await client.runs.create(thread_id, "slow", input={"steps": 1, "delay": 0.5, "label": "b"})
    await client.runs.join(thread_id, first["run_id"])
    # the first run is over, but the second still holds the thread
    assert (await client.runs.get(thread_id, second["run_id"]))["status"] in ("pending", "running")
    assert (await client.threads.get(thread_id))["status"] == "busy"
    await client.runs.join(thread_id, second["run_id"])
    assert (await client.threads.get(thread_id))["status"] == "idle"
