"""Run streams: SSE framing on the wire, every stream mode, subgraph namespaces, resumable replay, heartbeats,
disconnects."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.server.helpers import SSE, human, names, new_thread, parse_sse, wait_status

HEARTBEAT_WAIT = 1.3  # longer than the fixture's 0.5 s heartbeat
LEAVE_AFTER = 0.2  # a client that leaves before the first heartbeat


async def _raw_stream(http, thread_id: str, body: dict) -> tuple[dict, list[SSE], list[bytes]]:
    async with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
        assert response.status_code == 200
        raw = await response.aread()
        parsed = parse_sse(raw)
        return dict(response.headers), parsed.events, parsed.comments


async def _parts(client, thread_id, assistant_id, **kwargs):
    return [p async for p in client.runs.stream(thread_id, assistant_id, **kwargs)]


# ---- framing --------------------------------------------------------------------------------------------------


async def test_sse_framing_on_the_wire(http):
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    headers, events, _ = await _raw_stream(
        http, thread_id, {"assistant_id": "echo", "input": human("wire"), "stream_mode": ["values", "updates"]}
    )
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-store"
    first = events[0]
    assert first.raw.startswith(b"event: metadata\r\ndata: {")
    run_id = headers["content-location"].rsplit("/", 1)[1]
    assert first.data == {"run_id": run_id, "attempt": 1}
    assert all(e.id is None for e in events)  # not resumable: no ids
    assert all(b"\n" not in e.raw.split(b"\r\ndata: ", 1)[1] for e in events)  # one compact JSON line each
    assert names(events[1:]) == ["values", "updates", "values", "updates", "values"]
    assert [list(e.data) for e in events if e.event == "updates"] == [["echo"], ["tally"]]
    assert events[-1].data["turns"] == 1


async def test_default_mode_is_values(client):
    parts = await _parts(client, await new_thread(client), "echo", input=human("d"))
    assert names(parts) == ["metadata", "values", "values", "values"]
    assert [p.data["turns"] for p in parts[1:]] == [0, 0, 1]


async def test_an_empty_mode_list_is_the_default(http):
    """As langgraph-api reads `stream_mode: []` (it used to stream nothing but the metadata)."""
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    _, events, _ = await _raw_stream(http, thread_id, {"assistant_id": "echo", "input": human("e"), "stream_mode": []})
    assert names(events) == ["metadata", "values", "values", "values"]


async def test_stateless_stream(http):
    async with http.stream("POST", "/runs/stream", json={"assistant_id": "echo", "input": human("s")}) as response:
        run_id = response.headers["content-location"].rsplit("/", 1)[1]
        assert response.headers["content-location"] == f"/runs/{run_id}"
        assert response.headers["location"] == f"/runs/{run_id}/stream"
        events = parse_sse(await response.aread()).events
    assert events[0].data["run_id"] == run_id
    assert events[-1].data["turns"] == 1


# ---- modes ----------------------------------------------------------------------------------------------------


async def test_updates_mode(client):
    parts = await _parts(client, await new_thread(client), "echo", input=human("u"), stream_mode="updates")
    assert names(parts) == ["metadata", "updates", "updates"]
    assert parts[1].data["echo"]["messages"][0]["content"] == "echo: u"
    assert parts[2].data == {"tally": {"turns": 1}}


async def test_messages_tuple_mode(client):
    parts = await _parts(client, await new_thread(client), "chat", input=human("one two"), stream_mode="messages-tuple")
    tokens = [p for p in parts if p.event == "messages"]
    assert names(parts) == ["metadata"] + ["messages"] * len(tokens)
    assert len(tokens) > 3  # streamed word by word
    chunks = [chunk for chunk, _ in (p.data for p in tokens)]
    assert "".join(c["content"] for c in chunks) == "fake reply to one two"
    assert {c["type"] for c in chunks} == {"AIMessageChunk"}
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"]  # one message id, as the UI needs
    metadata = tokens[0].data[1]
    assert metadata["langgraph_node"] == "chat"
    assert metadata["graph_id"] == "chat"


async def test_messages_mode_accumulates(client):
    parts = await _parts(client, await new_thread(client), "chat", input=human("a b"), stream_mode="messages")
    assert parts[1].event == "messages/metadata"
    [(message_id, meta)] = parts[1].data.items()
    assert meta["metadata"]["langgraph_node"] == "chat"
    partials = [p.data for p in parts if p.event == "messages/partial"]
    assert len(partials) > 2
    contents = [data[0]["content"] for data in partials]
    for shorter, longer in zip(contents, contents[1:]):
        assert longer.startswith(shorter) and len(longer) > len(shorter)
    assert contents[-1] == "fake reply to a b"
    assert {data[0]["id"] for data in partials} == {message_id}
    assert sum(1 for p in parts if p.event == "messages/metadata") == 1


async def test_custom_mode(client):
    parts = await _parts(client, await new_thread(client), "custom", input={"n": 3}, stream_mode="custom")
    assert [p.data for p in parts[1:]] == [{"progress": i, "of": 3} for i in (1, 2, 3)]


async def test_events_mode(client):
    parts = await _parts(client, await new_thread(client), "custom", input={"n": 1}, stream_mode="events")
    assert set(names(parts[1:])) == {"events"}
    kinds = [(p.data["event"], p.data["name"]) for p in parts[1:]]
    assert kinds[0] == ("on_chain_start", "custom")
    assert ("on_chain_start", "produce") in kinds and ("on_chain_end", "produce") in kinds
    assert kinds[-1] == ("on_chain_end", "custom")
    assert parts[-1].data["data"]["output"] == {"n": 1, "result": "done 1"}


async def test_debug_mode_has_checkpoint_objects(client):
    thread_id = await new_thread(client)
    parts = await _parts(client, thread_id, "echo", input=human("dbg"), stream_mode="debug")
    debug = [p.data for p in parts if p.event == "debug"]
    assert len(debug) == len(parts) - 1
    checkpoints = [d["payload"] for d in debug if d["type"] == "checkpoint"]
    assert len(checkpoints) == 4
    assert checkpoints[0]["parent_checkpoint"] is None
    for earlier, later in zip(checkpoints, checkpoints[1:]):
        assert later["parent_checkpoint"] == earlier["checkpoint"]
    for payload in checkpoints:
        assert payload["checkpoint"]["thread_id"] == thread_id
        assert payload["checkpoint"]["checkpoint_ns"] == ""
        assert payload["checkpoint"]["checkpoint_id"] == payload["config"]["configurable"]["checkpoint_id"]
    assert checkpoints[-1]["checkpoint"] == (await client.threads.get_state(thread_id))["checkpoint"]
    assert {d["type"] for d in debug} == {"checkpoint", "task", "task_result"}
    assert [d["payload"]["name"] for d in debug if d["type"] == "task"] == ["echo", "tally"]


async def test_tasks_and_checkpoints_modes(client):
    thread_id = await new_thread(client)
    parts = await _parts(client, thread_id, "echo", input=human("t"), stream_mode=["tasks", "checkpoints"])
    tasks = [p.data for p in parts if p.event == "tasks"]
    assert [(t["name"], "result" in t) for t in tasks] == [("echo", False), ("echo", True), ("tally", False), ("tally", True)]
    assert tasks[0]["id"] == tasks[1]["id"]
    assert tasks[3]["result"] == {"turns": 1}
    checkpoints = [p.data for p in parts if p.event == "checkpoints"]
    assert [c["next"] for c in checkpoints] == [["__start__"], ["echo"], ["tally"], []]
    assert checkpoints[-1]["values"]["turns"] == 1
    head = await client.threads.get_state(thread_id)
    assert checkpoints[-1]["config"]["configurable"]["checkpoint_id"] == head["checkpoint"]["checkpoint_id"]


async def test_several_modes_at_once(client):
    parts = await _parts(
        client, await new_thread(client), "custom", input={"n": 2}, stream_mode=["values", "updates", "custom", "tasks"]
    )
    seen = names(parts)
    assert seen[0] == "metadata"
    assert set(seen[1:]) == {"values", "updates", "custom", "tasks"}
    assert seen.index("custom") < seen.index("updates")  # written during the node, before its update
    assert [p.data for p in parts if p.event == "updates"] == [{"produce": {"result": "done 2"}}]
    assert [p.data for p in parts if p.event == "custom"] == [{"progress": 1, "of": 2}, {"progress": 2, "of": 2}]
    assert [p.data for p in parts if p.event == "values"][-1] == {"n": 2, "result": "done 2"}


async def test_subgraph_events_are_namespaced(client):
    thread_id = await new_thread(client)
    parts = await _parts(
        client, thread_id, "subgraph", input={"value": 1}, stream_mode=["updates", "values"], stream_subgraphs=True
    )
    namespaced = [p for p in parts if "|" in p.event]
    assert namespaced
    task_namespaces = {p.event.split("|", 1)[1] for p in namespaced}
    [namespace] = task_namespaces
    assert namespace.startswith("child:")
    child_updates = [p.data for p in namespaced if p.event.startswith("updates|")]
    assert child_updates == [
        {"inner_a": {"trail": ["inner_a"], "value": 2}},
        {"inner_b": {"trail": ["inner_b"], "value": 20}},
    ]
    root_updates = [list(p.data) for p in parts if p.event == "updates"]
    assert root_updates == [["child"], ["after"]]
    # the namespace is the child's checkpoint namespace
    history = await client.threads.get_history(thread_id, limit=100)
    child_task_ids = {t["id"] for h in history for t in h["tasks"] if t["name"] == "child"}
    assert namespace == f"child:{child_task_ids.pop()}"

    plain = await _parts(client, await new_thread(client), "subgraph", input={"value": 1}, stream_mode="updates")
    assert not any("|" in p.event for p in plain)


async def test_interrupt_shows_as_values_event_without_updates(client):
    """As langgraph-api with LangGraph >= 1.0.4: one values event carries the whole state and the interrupt; none
    carries the interrupt alone (a client showing `values` would blank the conversation for an event)."""
    parts = await _parts(client, await new_thread(client), "hitl", input={"topic": "x"}, stream_mode="values")
    assert "updates" not in names(parts)
    interrupting = [p.data for p in parts if p.event == "values" and "__interrupt__" in p.data]
    assert len(interrupting) == 1, parts
    assert interrupting[0]["__interrupt__"][0]["value"] == {"question": "approve?", "draft": "draft for x"}
    assert interrupting[0]["draft"] == "draft for x"

    chat = await _parts(client, await new_thread(client), "hitl", input={"topic": "z"}, stream_mode="messages-tuple")
    assert "values" not in names(chat)  # not asked for: the interrupt is in the thread's state, not the stream

    with_updates = await _parts(client, await new_thread(client), "hitl", input={"topic": "y"}, stream_mode="updates")
    assert with_updates[-1].event == "updates"
    assert with_updates[-1].data["__interrupt__"][0]["value"]["draft"] == "draft for y"


async def test_error_event(client, http):
    thread_id = await new_thread(client)
    parts = await _parts(client, thread_id, "failing", input={}, stream_mode=["values", "updates"])
    assert parts[-1].event == "error"
    assert parts[-1].data == {"error": "ValueError", "message": "intentional failure in node boom"}
    assert {"ok": {"reached": "ok"}} in [p.data for p in parts if p.event == "updates"]
    _, events, _ = await _raw_stream(http, thread_id, {"assistant_id": "failing", "input": {}})
    assert events[-1].event == "error"


# ---- resumable streams and joining ----------------------------------------------------------------------------


async def test_resumable_stream_replays_exactly_once(client):
    thread_id = await new_thread(client)
    original = await _parts(
        client, thread_id, "echo", input=human("r"), stream_mode=["values", "updates"], stream_resumable=True
    )
    ids = [p.id for p in original]
    assert None not in ids and len(set(ids)) == len(ids)
    run_id = original[0].data["run_id"]

    replay = [p async for p in client.runs.join_stream(thread_id, run_id, last_event_id="-1")]
    assert [(p.event, p.data, p.id) for p in replay] == [(p.event, p.data, p.id) for p in original]

    middle = 3
    rest = [p async for p in client.runs.join_stream(thread_id, run_id, last_event_id=original[middle].id)]
    assert [(p.event, p.data, p.id) for p in rest] == [(p.event, p.data, p.id) for p in original[middle + 1 :]]

    # a finished run joined without Last-Event-ID has nothing new to send
    assert [p async for p in client.runs.join_stream(thread_id, run_id)] == []


async def test_resumable_ids_on_the_wire(http):
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    _, events, _ = await _raw_stream(
        http, thread_id, {"assistant_id": "echo", "input": human("w"), "stream_resumable": True}
    )
    assert all(e.raw.endswith(f"\r\nid: {e.id}".encode()) for e in events)
    run_id = events[0].data["run_id"]
    async with http.stream(
        "GET", f"/threads/{thread_id}/runs/{run_id}/stream", headers={"Last-Event-ID": events[1].id}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        replayed = parse_sse(await response.aread()).events
    assert [(e.event, e.data, e.id) for e in replayed] == [(e.event, e.data, e.id) for e in events[2:]]


async def test_join_stream_follows_a_live_run(client):
    thread_id = await new_thread(client)
    run = await client.runs.create(
        thread_id, "slow", input={"steps": 4, "delay": 0.15, "label": "live"}, stream_mode=["values", "updates"]
    )
    await wait_status(client, thread_id, run["run_id"], "running")
    parts = [p async for p in client.runs.join_stream(thread_id, run["run_id"])]
    values = [p.data for p in parts if p.event == "values"]
    assert values[-1]["done"] == 4
    assert values[-1]["log"] == ["live:1", "live:2", "live:3", "live:4"]
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"


async def test_join_stream_mode_filter(client):
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input=human("f"), stream_mode=["values", "updates"])
    await client.runs.join(thread_id, run["run_id"])
    only_updates = [
        p async for p in client.runs.join_stream(thread_id, run["run_id"], stream_mode="updates", last_event_id="-1")
    ]
    assert names(only_updates) == ["metadata", "updates", "updates"]
    both = [
        p
        async for p in client.runs.join_stream(
            thread_id, run["run_id"], stream_mode=["updates", "values"], last_event_id="-1"
        )
    ]
    assert names(both) == ["metadata", "values", "updates", "values", "updates", "values"]


# ---- heartbeats, keep-alives, disconnects ---------------------------------------------------------------------


async def test_heartbeat_comment_while_a_node_sleeps(http):
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    _, events, comments = await _raw_stream(
        http, thread_id, {"assistant_id": "slow", "input": {"steps": 1, "delay": HEARTBEAT_WAIT}}
    )
    assert comments and set(comments) == {b": heartbeat"}
    assert events[-1].data["done"] == 1


async def test_wait_writes_keepalive_newlines(http):
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    response = await http.post(
        f"/threads/{thread_id}/runs/wait", json={"assistant_id": "slow", "input": {"steps": 1, "delay": HEARTBEAT_WAIT}}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.content.startswith(b"\n")
    body = response.content.lstrip(b"\n")
    assert b"\n" not in body
    assert json.loads(body)["done"] == 1
    assert response.headers["location"].endswith("/join")


async def _disconnect_after_first_values(http, thread_id: str, body: dict) -> str:
    async with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
        run_id = response.headers["content-location"].rsplit("/", 1)[1]
        async for line in response.aiter_lines():
            if line.startswith("event: values"):
                break
    return run_id


async def test_on_disconnect_cancel_interrupts_the_run(client, http):
    thread_id = await new_thread(client)
    run_id = await _disconnect_after_first_values(
        http,
        thread_id,
        {"assistant_id": "slow", "input": {"steps": 40, "delay": 0.1}, "on_disconnect": "cancel"},
    )
    run = await wait_status(client, thread_id, run_id, {"success", "error", "interrupted"})
    assert run["status"] == "interrupted"
    assert (await client.threads.get(thread_id))["status"] != "busy"
    assert (await client.threads.get_state(thread_id))["values"]["done"] < 40


async def test_wait_with_on_disconnect_cancel_interrupts_the_run_when_the_client_leaves_early(client, http):
    """Even before the first keep-alive newline: the client may leave at any time."""
    thread_id = await new_thread(client)
    body = {"assistant_id": "slow", "input": {"steps": 40, "delay": 0.1}, "on_disconnect": "cancel"}
    with pytest.raises(httpx.ReadTimeout):
        await http.post(f"/threads/{thread_id}/runs/wait", json=body, timeout=httpx.Timeout(5, read=LEAVE_AFTER))
    [run] = await client.runs.list(thread_id)
    run = await wait_status(client, thread_id, run["run_id"], {"success", "error", "interrupted"})
    assert run["status"] == "interrupted"


async def test_join_with_cancel_on_disconnect_interrupts_the_run(client, http):
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "slow", input={"steps": 40, "delay": 0.1})
    with pytest.raises(httpx.ReadTimeout):
        await http.get(f"/threads/{thread_id}/runs/{run['run_id']}/join", params={"cancel_on_disconnect": "true"},
                       timeout=httpx.Timeout(5, read=LEAVE_AFTER))
    run = await wait_status(client, thread_id, run["run_id"], {"success", "error", "interrupted"})
    assert run["status"] == "interrupted"


async def test_disconnect_by_default_lets_the_run_finish(client, http):
    thread_id = await new_thread(client)
    run_id = await _disconnect_after_first_values(
        http, thread_id, {"assistant_id": "slow", "input": {"steps": 4, "delay": 0.1}}
    )
    await asyncio.sleep(0.1)
    assert (await client.runs.get(thread_id, run_id))["status"] in ("pending", "running", "success")
    output = await client.runs.join(thread_id, run_id)
    assert output["done"] == 4
    assert (await client.runs.get(thread_id, run_id))["status"] == "success"
