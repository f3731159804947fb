"""The thread streaming protocol (`client.threads.stream()`): POST /threads/{id}/commands and
/threads/{id}/stream/events (SSE and WebSocket), driven by the official SDK and checked on the wire."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from aegra_server.runs.execute import execute
from aegra_server.runs.stream import RunStream
from aegra_server.streaming.protocol import EventFilter, ThreadProtocolLog
from tests.server.helpers import human, new_thread

OUTPUT_TIMEOUT = 30.0
ALL_CHANNELS = ["values", "updates", "messages", "lifecycle", "checkpoints", "tasks", "custom", "tools", "input"]


# ---- raw helpers ------------------------------------------------------------------------------------------------


async def command(http: httpx.AsyncClient, thread_id: str, method: str, params: dict | None = None, id: int = 1):
    envelope = {"id": id, "method": method, "params": params or {}}
    response = await http.post(f"/threads/{thread_id}/commands", json=envelope)
    assert response.status_code == 200, response.text
    return response.json()


async def start_run(http: httpx.AsyncClient, thread_id: str, assistant_id: str, input: Any) -> dict:
    answer = await command(http, thread_id, "run.start", {"assistant_id": assistant_id, "input": input})
    assert answer["type"] == "success", answer
    return answer


def _frames(buffer: bytearray) -> list[list[str]]:
    """Complete SSE blocks taken off the front of `buffer` (CRLF framed), as their lines."""
    blocks = []
    while b"\r\n\r\n" in buffer:
        block = bytes(buffer).partition(b"\r\n\r\n")[0]
        del buffer[: len(block) + 4]
        blocks.append(block.decode().split("\r\n"))
    return blocks


async def read_events(
    http: httpx.AsyncClient,
    thread_id: str,
    body: dict,
    until=lambda event: False,
    count: int | None = None,
    timeout: float = OUTPUT_TIMEOUT,
) -> list[dict]:
    """Protocol events from one SSE connection until `until(event)` is true or `count` arrived (then it is closed).

    Every frame must be `event: <method>`, `data: <envelope>`, `id: <seq>`; heartbeats are `:` comments."""
    events: list[dict] = []

    async def consume() -> None:
        async with http.stream("POST", f"/threads/{thread_id}/stream/events", json=body) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            buffer = bytearray()
            async for chunk in response.aiter_bytes():
                buffer.extend(chunk)
                for lines in _frames(buffer):
                    if all(line.startswith(":") for line in lines):
                        continue  # heartbeat
                    assert [line.partition(": ")[0] for line in lines] == ["event", "data", "id"], lines
                    event = json.loads(lines[1].partition(": ")[2])
                    assert lines[0] == f"event: {event['method']}"
                    assert lines[2] == f"id: {event['seq']}"
                    events.append(event)
                    if until(event) or (count is not None and len(events) >= count):
                        return

    await asyncio.wait_for(consume(), timeout)
    return events


def root_terminal(event: dict) -> bool:
    return (
        event["method"] == "lifecycle"
        and event["params"]["namespace"] == []
        and event["params"]["data"]["event"] in ("completed", "failed", "interrupted")
    )


def data_of(events: list[dict], method: str, kind: str | None = None, root: bool | None = None) -> list[Any]:
    """`params.data` of the events with `method` (and `data.event == kind`; only root or only nested ones)."""
    return [
        e["params"]["data"]
        for e in events
        if e["method"] == method
        and (kind is None or e["params"]["data"].get("event") == kind)
        and (root is None or (e["params"]["namespace"] == []) == root)
    ]


# ---- through the SDK --------------------------------------------------------------------------------------------


async def test_sdk_chat_run_streams_messages_and_output(client) -> None:
    async with client.threads.stream(assistant_id="chat") as thread:
        started = await thread.run.start(input=human("hello there"))
        assert uuid.UUID(started["run_id"])
        streams = [s async for s in thread.messages]
        assert len(streams) == 1
        text = "".join([t async for t in streams[0].text])
        assert text == "fake reply to hello there"
        output = await streams[0].output
        assert output.text == "fake reply to hello there"
        final = await thread.output.with_timeout(OUTPUT_TIMEOUT)
    assert [m["content"] for m in final["messages"]] == ["hello there", "fake reply to hello there"]
    # The thread the SDK minted exists now, with the run on it.
    runs = await client.runs.list(thread.thread_id)
    assert [r["run_id"] for r in runs] == [started["run_id"]]
    assert runs[0]["status"] == "success"


async def test_sdk_values_and_messages_interleaved(client) -> None:
    async with client.threads.stream(assistant_id="chat") as thread:
        await thread.run.start(input=human("interleave"))
        # Drain the projections first: a message's text is fed by the same loop.
        seen = [pair async for pair in thread.interleave_projections(["values", "messages"])]
        texts = ["".join([t async for t in item.text]) for channel, item in seen if channel == "messages"]
    snapshots = [item for channel, item in seen if channel == "values"]
    assert texts == ["fake reply to interleave"]
    assert [m["content"] for m in snapshots[-1]["messages"]] == ["interleave", "fake reply to interleave"]
    assert all("__interrupt__" not in s for s in snapshots)


async def test_sdk_interrupt_arrives_on_input_and_respond_resumes(client) -> None:
    async with client.threads.stream(assistant_id="hitl") as thread:
        await thread.run.start(input={"topic": "protocol"})
        snapshots = [snap async for snap in thread.values]  # ends when the interrupt arrives
        assert thread.interrupted
        assert len(thread.interrupts) == 1
        interrupt = thread.interrupts[0]
        assert interrupt["value"] == {"question": "approve?", "draft": "draft for protocol"}
        assert interrupt["namespace"] == []
        # The SDK ends `thread.values` when its separate lifecycle stream sees the interrupt, which may overtake
        # the values stream's last event: the draft state is among the snapshots (the first is the state it
        # fetched), not necessarily last. Their order on one stream is asserted on the wire below
        # (test_interrupt_on_input_channel_and_input_respond_over_http).
        before, drafted = {"messages": [], "topic": "protocol"}, {"messages": [], "topic": "protocol", "draft": "draft for protocol"}
        assert drafted in snapshots and all(s in ({}, before, drafted) for s in snapshots), snapshots

        await thread.run.respond("approved")
        final = await thread.output.with_timeout(OUTPUT_TIMEOUT)
        assert not thread.interrupted and thread.interrupts == []
    assert final["decision"] == "approved"
    assert final["messages"][-1]["content"] == "decision: approved"
    state = await client.threads.get_state(thread.thread_id)
    assert state["next"] == [] and state["values"]["decision"] == "approved"


async def test_sdk_explicit_thread_id_and_second_stream_session(client) -> None:
    thread_id = await new_thread(client)
    async with client.threads.stream(thread_id, assistant_id="chat") as thread:
        await thread.run.start(input=human("first"))
        first = await thread.output.with_timeout(OUTPUT_TIMEOUT)
    assert [m["content"] for m in first["messages"]] == ["first", "fake reply to first"]
    # Reattaching to a finished thread: output comes from the thread's state at once.
    async with client.threads.stream(thread_id, assistant_id="chat") as thread:
        again = await thread.output.with_timeout(OUTPUT_TIMEOUT)
    assert again == first


async def test_sdk_subgraph_handles(client) -> None:
    async with client.threads.stream(assistant_id="subgraph") as thread:
        await thread.run.start(input={"value": 1})
        handles = [h async for h in thread.subgraphs]
        final = await thread.output.with_timeout(OUTPUT_TIMEOUT)
    assert [(h.graph_name, h.status) for h in handles] == [("child", "completed")]
    assert handles[0].namespace[0].startswith("child:") and handles[0].trigger_call_id
    assert final["trail"] == ["inner_a", "inner_b", "after"]


async def test_sdk_failed_run_raises_from_output(client) -> None:
    async with client.threads.stream(assistant_id="failing") as thread:
        await thread.run.start(input={})
        with pytest.raises(RuntimeError, match="intentional failure in node boom"):
            await thread.output.with_timeout(OUTPUT_TIMEOUT)


async def test_sdk_subscription_opened_before_the_thread_exists_sees_its_first_run(client) -> None:
    """threads.stream() mints the thread id; a subscription opened before run.start creates the thread gets the
    run's events (it used to be refused 404, which the SDK swallows: the stream stayed empty)."""
    async with client.threads.stream(assistant_id="echo") as thread:
        events = thread.events  # subscribes now, on a thread nobody created yet
        await thread.run.start(input=human("first"))
        seen: list[str] = []

        async def until_completed() -> None:
            async for event in events:
                data = event["params"]["data"]
                seen.append(event["method"])
                if event["method"] == "lifecycle" and data.get("event") == "completed":
                    return

        await asyncio.wait_for(until_completed(), OUTPUT_TIMEOUT)
    assert "values" in seen and seen[-1] == "lifecycle", seen


async def test_sdk_websocket_transport(client) -> None:
    async with client.threads.stream(assistant_id="hitl", transport="websocket") as thread:
        await thread.run.start(input={"topic": "sockets"})
        async for _ in thread.values:
            pass
        assert thread.interrupted
        await thread.run.respond("over ws")
        final = await thread.output.with_timeout(OUTPUT_TIMEOUT)
    assert final["decision"] == "over ws"


# ---- on the wire ------------------------------------------------------------------------------------------------


async def test_events_request_errors(http: httpx.AsyncClient, client) -> None:
    thread_id = await new_thread(client)
    url = f"/threads/{thread_id}/stream/events"
    malformed = (
        b"",
        b"   ",
        b"{}",
        b"not json",
        b'{"channels": []}',
        b'{"channels": "values"}',
        b'{"channels": ["values"], "since": -1}',
        b'{"channels": ["values"], "depth": "x"}',
        b'{"channels": ["values"], "namespaces": ["a"]}',
    )
    for content in malformed:
        response = await http.post(url, content=content, headers={"content-type": "application/json"})
        assert response.status_code == 400, (content, response.status_code, response.text)
        assert "detail" in response.json()
    not_uuid = await http.post("/threads/nope/stream/events", json={"channels": ["values"]})
    assert not_uuid.status_code == 422


async def test_sse_frames_carry_method_and_seq_and_replay_from_since(http: httpx.AsyncClient) -> None:
    thread_id = str(uuid.uuid4())
    started = await start_run(http, thread_id, "chat", human("wire"))
    assert started["meta"]["applied_through_seq"] == 0  # a new thread: nothing before this run
    run_id = started["result"]["run_id"]
    events = await read_events(http, thread_id, {"channels": ALL_CHANNELS}, until=root_terminal)

    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1))
    for event in events:
        assert event["type"] == "event"
        assert event["event_id"] == str(event["seq"])
        assert set(event["params"]) == {"namespace", "timestamp", "data"}
        assert isinstance(event["params"]["timestamp"], int)
    assert events[0]["method"] == "lifecycle"
    assert events[0]["params"]["data"] == {"event": "running", "run_id": run_id, "graph_name": "chat"}
    assert events[-1]["params"]["data"] == {"event": "completed", "run_id": run_id, "graph_name": "chat"}

    methods = {e["method"] for e in events}
    assert {"values", "updates", "messages", "checkpoints", "tasks", "lifecycle"} <= methods
    update = next(e for e in events if e["method"] == "updates")["params"]["data"]
    assert update["node"] == "chat" and update["values"]["messages"][0]["content"] == "fake reply to wire"
    checkpoint = next(e for e in events if e["method"] == "checkpoints")["params"]["data"]
    assert set(checkpoint) >= {"id", "step", "source"} and checkpoint["source"] == "input" and checkpoint["step"] == -1

    lifecycle = [d["event"] for d in data_of(events, "messages")]
    assert lifecycle[0] == "message-start" and lifecycle[-1] == "message-finish"
    assert lifecycle[1] == "content-block-start" and "content-block-delta" in lifecycle
    [start] = data_of(events, "messages", "message-start")
    assert start["role"] == "ai" and start["metadata"]["langgraph_node"] == "chat"
    assert start["metadata"]["run_id"] == run_id
    deltas = [d["delta"]["text"] for d in data_of(events, "messages", "content-block-delta")]
    assert "".join(deltas) == "fake reply to wire"
    [finish] = data_of(events, "messages", "content-block-finish")
    assert finish["content"] == {"type": "text", "text": "fake reply to wire"}

    # `since` replays exactly what came after it; each connection gets the same seqs.
    for since in (0, 3, len(events) - 1):
        replay = await read_events(http, thread_id, {"channels": ALL_CHANNELS, "since": since}, until=root_terminal)
        assert replay == events[since:]
    # A cursor from the future (from another server process, before a restart) means "from now on".
    reader = asyncio.create_task(read_events(http, thread_id, {"channels": ["lifecycle"], "since": 10_000}, count=1))
    await asyncio.sleep(0.3)
    second = await start_run(http, thread_id, "chat", human("later"))
    assert second["meta"]["applied_through_seq"] == events[-1]["seq"]
    [first_new] = await reader
    assert first_new["seq"] == events[-1]["seq"] + 1
    assert first_new["params"]["data"]["run_id"] == second["result"]["run_id"]
    # Without `since`, a reader gets the latest run from its start, even when it is over already.
    await read_events(http, thread_id, {"channels": ["lifecycle"], "since": first_new["seq"]}, until=root_terminal)
    latest = await read_events(http, thread_id, {"channels": ["lifecycle", "messages"]}, until=root_terminal)
    assert latest[0] == first_new
    completed = {"event": "completed", "run_id": second["result"]["run_id"], "graph_name": "chat"}
    assert latest[-1]["params"]["data"] == completed


async def test_reconnect_with_since_gets_exactly_what_was_missed(http: httpx.AsyncClient) -> None:
    thread_id = str(uuid.uuid4())
    await start_run(http, thread_id, "slow", {"steps": 4, "delay": 0.3, "label": "r"})
    body = {"channels": ["values", "updates", "lifecycle", "checkpoints", "tasks"]}
    first = await read_events(http, thread_id, body, count=5)  # then the client drops, mid-run
    assert not any(root_terminal(e) for e in first)
    await asyncio.sleep(0.5)  # the run goes on meanwhile
    rest = await read_events(http, thread_id, {**body, "since": first[-1]["seq"]}, until=root_terminal)
    whole = await read_events(http, thread_id, body, until=root_terminal)
    assert first + rest == whole
    assert rest[0]["seq"] == first[-1]["seq"] + 1
    final = [e for e in whole if e["method"] == "values"][-1]["params"]["data"]
    assert final["log"] == ["r:1", "r:2", "r:3", "r:4"]


async def test_live_stream_follows_every_run_on_the_thread(http: httpx.AsyncClient, client) -> None:
    thread_id = await new_thread(client)
    terminals: list[dict] = []

    def second_terminal(event: dict) -> bool:
        if root_terminal(event):
            terminals.append(event)
        return len(terminals) == 2

    body = {"channels": ["lifecycle", "messages"]}
    reader = asyncio.create_task(read_events(http, thread_id, body, until=second_terminal))
    await asyncio.sleep(0.3)
    # One run through the protocol, one through the REST API: the protocol stream shows both.
    await start_run(http, thread_id, "chat", human("one"))
    parts = [p async for p in client.runs.stream(thread_id, "chat", input=human("two"), stream_mode="messages-tuple")]
    assert "messages" in [p.event for p in parts]
    events = await reader
    running = [e for e in events if e["method"] == "lifecycle" and e["params"]["data"]["event"] == "running"]
    assert len(running) == 2 and [t["params"]["data"]["event"] for t in terminals] == ["completed", "completed"]
    texts = [d["content"]["text"] for d in data_of(events, "messages", "content-block-finish")]
    assert texts == ["fake reply to one", "fake reply to two"]


async def test_channels_namespaces_and_depth_filter_subgraph_events(http: httpx.AsyncClient) -> None:
    thread_id = str(uuid.uuid4())
    await start_run(http, thread_id, "subgraph", {"value": 1})
    body = {"channels": ["updates", "lifecycle", "tasks"]}
    everything = await read_events(http, thread_id, body, until=root_terminal)
    child_ns = next(e["params"]["namespace"] for e in everything if e["params"]["namespace"])
    assert len(child_ns) == 1 and child_ns[0].startswith("child:")
    task_id = child_ns[0].partition(":")[2]

    assert data_of(everything, "lifecycle", root=False) == [
        {"event": "started", "graph_name": "child", "trigger_call_id": task_id},
        {"event": "completed", "graph_name": "child"},
    ]
    assert [d["node"] for d in data_of(everything, "updates", root=False)] == ["inner_a", "inner_b"]
    assert [d["node"] for d in data_of(everything, "updates", root=True)] == ["child", "after"]
    task_result = next(e for e in everything if e["method"] == "tasks" and "result" in e["params"]["data"])
    assert set(task_result["params"]["data"]) >= {"id", "name", "result", "error", "interrupts"}

    body = {"channels": ["updates", "lifecycle"], "namespaces": [[]], "depth": 0, "since": 0}
    root_only = await read_events(http, thread_id, body, until=root_terminal)
    assert root_only and all(e["params"]["namespace"] == [] for e in root_only)
    assert [e["params"]["data"]["node"] for e in root_only if e["method"] == "updates"] == ["child", "after"]

    # A namespace prefix without the task id matches `child:<task id>`; updates only, so no lifecycle to stop on.
    body = {"channels": ["updates"], "namespaces": [["child"]], "since": 0}
    child_only = await read_events(http, thread_id, body, count=2)
    assert [e["params"]["namespace"] for e in child_only] == [child_ns, child_ns]
    assert [e["params"]["data"]["node"] for e in child_only] == ["inner_a", "inner_b"]

    # depth 1 from the root: the root and its direct children.
    body = {"channels": ["lifecycle"], "namespaces": [[]], "depth": 1, "since": 0}
    shallow = await read_events(http, thread_id, body, until=root_terminal)
    assert [len(e["params"]["namespace"]) for e in shallow] == [0, 1, 1, 0]

    tree = await command(http, thread_id, "agent.getTree")
    assert tree["type"] == "success"
    root = tree["result"]["tree"]
    assert root["namespace"] == [] and root["status"] == "completed" and root["graph_name"] == "subgraph"
    assert root["children"] == [{"namespace": child_ns, "status": "completed", "graph_name": "child", "children": []}]


async def test_custom_channel_and_custom_name_routing(http: httpx.AsyncClient) -> None:
    thread_id = str(uuid.uuid4())
    await start_run(http, thread_id, "custom", {"n": 2})
    events = await read_events(http, thread_id, {"channels": ["custom", "lifecycle"]}, until=root_terminal)
    custom = [e["params"]["data"] for e in events if e["method"] == "custom"]
    assert custom == [{"progress": 1, "of": 2}, {"progress": 2, "of": 2}]
    # `custom:<name>` only gets payloads named so; these have no name.
    body = {"channels": ["custom:progress", "lifecycle"], "since": 0}
    named = await read_events(http, thread_id, body, until=root_terminal)
    assert [e["method"] for e in named] == ["lifecycle", "lifecycle"]


async def test_interrupt_on_input_channel_and_input_respond_over_http(http: httpx.AsyncClient) -> None:
    thread_id = str(uuid.uuid4())
    first = await start_run(http, thread_id, "hitl", {"topic": "raw"})
    events = await read_events(http, thread_id, {"channels": ["input", "lifecycle"]}, until=root_terminal)
    assert [e["method"] for e in events] == ["lifecycle", "input.requested", "lifecycle"]
    assert events[-1]["params"]["data"]["event"] == "interrupted"
    values = await read_events(http, thread_id, {"channels": ["values", "lifecycle"], "since": 0}, until=root_terminal)
    snapshots = [e["params"]["data"] for e in values if e["method"] == "values"]
    drafted = {"messages": [], "topic": "raw", "draft": "draft for raw"}  # sent again as the run pauses
    assert len(snapshots) >= 2 and snapshots == [{"messages": [], "topic": "raw"}] + [drafted] * (len(snapshots) - 1)
    requested = events[1]
    assert requested["params"]["namespace"] == []
    data = requested["params"]["data"]
    assert data["payload"] == data["value"] == {"question": "approve?", "draft": "draft for raw"}

    params = {"namespace": [], "interrupt_id": "0" * 32, "response": "x"}
    wrong = await command(http, thread_id, "input.respond", params, id=7)
    assert wrong["type"] == "error" and wrong["id"] == 7 and wrong["error"] == "no_such_interrupt"

    params = {"namespace": [], "interrupt_id": data["interrupt_id"], "response": "ok"}
    answer = await command(http, thread_id, "input.respond", params, id=8)
    assert answer["type"] == "success" and answer["id"] == 8
    assert answer["result"]["run_id"] != first["result"]["run_id"]
    assert answer["meta"]["applied_through_seq"] == events[-1]["seq"]
    body = {"channels": ["lifecycle", "values"], "since": answer["meta"]["applied_through_seq"]}
    resumed = await read_events(http, thread_id, body, until=root_terminal)
    assert resumed[0]["params"]["data"]["event"] == "running"
    assert resumed[-1]["params"]["data"]["event"] == "completed"
    assert [e for e in resumed if e["method"] == "values"][-1]["params"]["data"]["decision"] == "ok"


async def test_cancelled_run_ends_interrupted_and_the_next_run_follows(http: httpx.AsyncClient, client) -> None:
    thread_id = str(uuid.uuid4())
    first = await start_run(http, thread_id, "slow", {"steps": 20, "delay": 0.2})
    await read_events(http, thread_id, {"channels": ["updates"]}, count=1)  # it is running
    await client.runs.cancel(thread_id, first["result"]["run_id"], wait=True)
    second = await start_run(http, thread_id, "chat", human("after cancel"))
    terminals: list[dict] = []

    def second_terminal(event: dict) -> bool:
        if root_terminal(event):
            terminals.append(event["params"]["data"])
        return len(terminals) == 2

    await read_events(http, thread_id, {"channels": ["lifecycle"], "since": 0}, until=second_terminal)
    assert [(t["event"], t["run_id"]) for t in terminals] == [
        ("interrupted", first["result"]["run_id"]),
        ("completed", second["result"]["run_id"]),
    ]


async def test_commands_errors_are_protocol_error_envelopes(http: httpx.AsyncClient) -> None:
    thread_id = str(uuid.uuid4())
    url = f"/threads/{thread_id}/commands"
    malformed = (
        b"",
        b"nope",
        b"[]",
        b'{"method": "run.start"}',
        b'{"id": 1}',
        b'{"id": -1, "method": "x"}',
        b'{"id": 1, "method": "run.start", "params": []}',
    )
    for content in malformed:
        response = await http.post(url, content=content, headers={"content-type": "application/json"})
        assert response.status_code == 400, content
        body = response.json()
        assert body["type"] == "error" and body["error"] == "invalid_argument" and body["message"]
    not_uuid = await http.post("/threads/x/commands", json={"id": 1, "method": "run.start", "params": {}})
    assert not_uuid.status_code == 422

    cases = {
        "no.such.command": ("unknown_command", {}),
        "run.start": ("invalid_argument", {"input": {}}),
        "input.inject": ("not_supported", {"namespace": [], "message": {"role": "user", "content": "hi"}}),
        "subscription.subscribe": ("not_supported", {"channels": ["values"]}),
        "subscription.unsubscribe": ("not_supported", {"subscription_id": "s"}),
        "subscription.reconnect": ("not_supported", {"run_id": "r"}),
        "agent.getTree": ("no_such_run", {}),
        "input.respond": ("invalid_argument", {"namespace": [], "interrupt_id": "i", "response": 1}),
        "state.fork": ("invalid_argument", {}),
    }
    for number, (method, (code, params)) in enumerate(cases.items(), start=1):
        answer = await command(http, thread_id, method, params, id=number)
        assert answer == {"type": "error", "id": number, "error": code, "message": answer["message"]}, (method, answer)
    unknown_assistant = await command(http, thread_id, "run.start", {"assistant_id": str(uuid.uuid4()), "input": {}})
    assert unknown_assistant["type"] == "error" and unknown_assistant["error"] == "invalid_argument"
    bad_config = await command(http, thread_id, "run.start", {"assistant_id": "chat", "config": {"configurable": 3}})
    assert bad_config["type"] == "error" and bad_config["error"] == "invalid_argument"


async def test_state_commands(http: httpx.AsyncClient, client) -> None:
    thread_id = str(uuid.uuid4())
    await start_run(http, thread_id, "chat", human("state"))
    await read_events(http, thread_id, {"channels": ["lifecycle"]}, until=root_terminal)
    state = await command(http, thread_id, "state.get", {"namespace": []})
    assert state["type"] == "success"
    assert [m["content"] for m in state["result"]["values"]["messages"]] == ["state", "fake reply to state"]
    assert state["result"]["checkpoint"]["id"]
    keys = await command(http, thread_id, "state.get", {"namespace": [], "keys": ["nothing"]})
    assert keys["result"]["values"] == {}
    listed = await command(http, thread_id, "state.listCheckpoints", {"limit": 2})
    checkpoints = listed["result"]["checkpoints"]
    assert len(checkpoints) == 2 and checkpoints[0]["id"] == state["result"]["checkpoint"]["id"]
    assert checkpoints[0]["step"] > checkpoints[1]["step"] and checkpoints[0]["timestamp"]

    # Fork from the checkpoint before the reply, with another question.
    before_reply = checkpoints[1]["id"]
    forked = await command(http, thread_id, "state.fork", {"checkpoint_id": before_reply, "input": human("again")})
    assert forked["type"] == "success" and forked["result"]["thread_id"] == thread_id
    body = {"channels": ["lifecycle"], "since": forked["meta"]["applied_through_seq"]}
    await read_events(http, thread_id, body, until=root_terminal)
    values = (await client.threads.get_state(thread_id))["values"]
    assert [m["content"] for m in values["messages"]][-1] == "fake reply to again"


# ---- the translation itself -------------------------------------------------------------------------------------


def _tool_graph():
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    def model(state: MessagesState) -> dict:
        call = {"id": "call-1", "name": "add", "args": {"a": 2, "b": 3}}
        return {"messages": [AIMessage(content="", id="ai-1", tool_calls=[call])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode([add]))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    builder.add_edge("tools", END)
    return builder.compile()


def _events(plog: ThreadProtocolLog, method: str | None = None) -> list[dict]:
    envelopes = [e.envelope for e in plog.events]
    return [e for e in envelopes if method is None or e["method"] == method]


async def test_tools_channel_and_tool_call_blocks_from_a_real_run() -> None:
    from aegra_server.serde import dumps

    source = RunStream("thread")
    source.append("metadata", dumps({"run_id": "run-1", "attempt": 1}))
    kwargs = {"input": human("2+3?"), "stream_mode": ["messages-tuple", "tools", "updates"]}
    outcome = await execute(_tool_graph(), kwargs, {"configurable": {"thread_id": "t"}}, None, source)
    assert outcome.status == "success"
    source.append("metadata", dumps({"status": "run_done", "run_id": "run-1"}))
    plog = ThreadProtocolLog("thread", source)
    await plog.sync()

    tools = [e["params"]["data"] for e in _events(plog, "tools")]
    assert [t["event"] for t in tools] == ["tool-started", "tool-finished"]
    started = {"event": "tool-started", "tool_call_id": "call-1", "tool_name": "add", "input": {"a": 2, "b": 3}}
    assert tools[0] == started
    assert tools[1]["output"]["content"] == "5" and tools[1]["output"]["tool_call_id"] == "call-1"

    messages = [e["params"]["data"] for e in _events(plog, "messages")]
    kinds = [m["event"] for m in messages]
    assert kinds == ["message-start", "content-block-start", "content-block-finish", "message-finish"]
    assert messages[0]["id"] == "ai-1" and messages[0]["role"] == "ai"
    assert messages[2]["content"] == {"type": "tool_call", "id": "call-1", "name": "add", "args": {"a": 2, "b": 3}}
    # The tool's result is not a chat message on the messages channel.
    assert all(m["id"] == "ai-1" for m in messages)
    assert _events(plog)[-1]["params"]["data"] == {"event": "completed", "run_id": "run-1"}


async def test_streamed_tool_call_chunks_become_deltas_and_a_parsed_call() -> None:
    from langchain_core.messages import AIMessageChunk

    from aegra_server.serde import dumps

    source = RunStream("thread")
    source.append("metadata", dumps({"run_id": "run-2", "attempt": 1}))
    meta = {"langgraph_node": "agent", "langgraph_step": 1}
    chunks = [
        AIMessageChunk(content="Let me ", id="m"),
        AIMessageChunk(content="add.", id="m"),
        AIMessageChunk(
            content="", id="m", tool_call_chunks=[{"id": "c9", "name": "add", "args": '{"a": 1,', "index": 1}]
        ),
        AIMessageChunk(
            content="",
            id="m",
            tool_call_chunks=[{"id": None, "name": None, "args": ' "b": 2}', "index": 1}],
            usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
            chunk_position="last",
        ),
    ]
    for chunk in chunks:
        source.append("messages", dumps([chunk, meta]))
    source.append("updates", dumps({"agent": {"messages": []}}))
    source.append("metadata", dumps({"status": "run_done", "run_id": "run-2"}))
    plog = ThreadProtocolLog("thread", source)
    await plog.sync()

    data = [e["params"]["data"] for e in _events(plog, "messages")]
    kinds = [(d["event"], d.get("index")) for d in data]
    assert kinds == [
        ("message-start", None),
        ("content-block-start", 0),
        ("content-block-delta", 0),
        ("content-block-delta", 0),
        ("content-block-start", 1),
        ("content-block-delta", 1),
        ("content-block-delta", 1),
        ("content-block-finish", 0),
        ("content-block-finish", 1),
        ("message-finish", None),
    ]
    assert all(d["id"] == "m" for d in data)
    assert data[1]["content"] == {"type": "text", "text": ""}
    assert data[4]["content"] == {"type": "tool_call_chunk", "id": "c9", "name": "add", "args": "", "index": 1}
    assert [d["delta"] for d in data[5:7]] == [
        {"type": "tool-call-delta", "args": '{"a": 1,'},
        {"type": "tool-call-delta", "args": ' "b": 2}'},
    ]
    assert data[7]["content"] == {"type": "text", "text": "Let me add."}
    assert data[8]["content"] == {"type": "tool_call", "id": "c9", "name": "add", "args": {"a": 1, "b": 2}}
    assert data[9]["usage"] == {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
    assert data[0]["metadata"]["langgraph_node"] == "agent" and data[0]["metadata"]["run_id"] == "run-2"

    # The content-block lifecycle is what langchain_core's ChatModelStream assembles a message from.
    from langchain_core.language_models.chat_model_stream import AsyncChatModelStream

    stream = AsyncChatModelStream(namespace=[], node="agent", message_id="m")
    for d in data:
        stream.dispatch(d)
    message = await stream.output
    assert message.text == "Let me add."
    assert message.tool_calls == [{"name": "add", "args": {"a": 1, "b": 2}, "id": "c9", "type": "tool_call"}]


async def test_filters_and_unfinished_messages_at_run_end() -> None:
    from langchain_core.messages import AIMessageChunk

    from aegra_server.serde import dumps

    source = RunStream("thread")
    source.append("metadata", dumps({"run_id": "run-3", "attempt": 1}))
    source.append("messages|sub:1", dumps([AIMessageChunk(content="partial", id="p"), {"langgraph_node": "n"}]))
    source.append("error", dumps({"error": "ValueError", "message": "bad"}))
    source.append("metadata", dumps({"status": "run_done", "run_id": "run-3"}))
    plog = ThreadProtocolLog("thread", source)
    await plog.sync()
    events = plog.events
    summary = [(e.method, e.namespace, e.envelope["params"]["data"].get("event")) for e in events]
    assert summary == [
        ("lifecycle", (), "running"),
        ("lifecycle", ("sub:1",), "started"),
        ("messages", ("sub:1",), "message-start"),
        ("messages", ("sub:1",), "content-block-start"),
        ("messages", ("sub:1",), "content-block-delta"),
        ("messages", ("sub:1",), "content-block-finish"),
        ("messages", ("sub:1",), "message-finish"),
        ("lifecycle", ("sub:1",), "failed"),
        ("lifecycle", (), "failed"),
    ]
    assert events[-1].envelope["params"]["data"]["error"] == "ValueError: bad"

    root = EventFilter.parse({"channels": ["lifecycle"], "namespaces": [[]], "depth": 0})
    assert [e.seq for e in events if root.matches(e)] == [1, 9]
    sub = EventFilter.parse({"channels": ["messages"], "namespaces": [["sub"]]})
    assert [e.seq for e in events if sub.matches(e)] == [3, 4, 5, 6, 7]
    exact = EventFilter.parse({"channels": ["messages", "lifecycle"], "namespaces": [["sub:2"]]})
    assert not any(exact.matches(e) for e in events)
    shallow = EventFilter.parse({"channels": ["lifecycle", "messages"], "depth": 0})
    assert [e.seq for e in events if shallow.matches(e)] == [1, 9]
    # After a replay point, exactly the rest.
    assert [e.seq for e in plog.after(6)] == [7, 8, 9]
    assert [e.seq for e in plog.after(None)] == list(range(1, 10))


async def test_websocket_subscriptions_and_in_band_commands(server_url: str, client) -> None:
    from websockets.asyncio.client import connect

    thread_id = await new_thread(client)
    base = server_url.replace("http://", "ws://")

    async with connect(f"{base}/threads/{thread_id}/stream/events") as ws:

        async def send(id: int, method: str, **params: Any) -> None:
            await ws.send(json.dumps({"id": id, "method": method, "params": params}))

        async def receive() -> dict:
            return json.loads(await asyncio.wait_for(ws.recv(), OUTPUT_TIMEOUT))

        await send(1, "subscription.subscribe", channels=["lifecycle"])
        subscribed = await receive()
        assert subscribed["type"] == "success" and subscribed["id"] == 1
        lifecycle_sub = subscribed["result"]["subscription_id"]
        assert subscribed["result"]["replayed_events"] == 0

        await send(2, "run.start", assistant_id="chat", input=human("ws"))
        started = await receive()
        assert started["type"] == "success" and started["id"] == 2
        run_id = started["result"]["run_id"]
        lifecycle = [await receive(), await receive()]
        assert [e["params"]["data"]["event"] for e in lifecycle] == ["running", "completed"]
        assert all(e["type"] == "event" and e["params"]["data"]["run_id"] == run_id for e in lifecycle)

        # A second subscription replays from `since`, then both stay live; each event comes once per socket.
        await send(3, "subscription.subscribe", channels=["values"], since=0)
        values_sub = await receive()
        replayed = values_sub["result"]["replayed_events"]
        assert values_sub["type"] == "success" and replayed == 2
        snapshots = [await receive() for _ in range(replayed)]
        assert [e["method"] for e in snapshots] == ["values", "values"]
        assert [m["content"] for m in snapshots[-1]["params"]["data"]["messages"]] == ["ws", "fake reply to ws"]

        await send(4, "subscription.unsubscribe", subscription_id=values_sub["result"]["subscription_id"])
        meta = {"applied_through_seq": lifecycle[-1]["seq"]}
        assert (await receive()) == {"type": "success", "id": 4, "result": {}, "meta": meta}
        await send(5, "subscription.unsubscribe", subscription_id="nope")
        assert (await receive())["error"] == "no_such_subscription"

        last = str(lifecycle[0]["seq"])
        await send(6, "subscription.reconnect", run_id=run_id, last_event_id=last, subscriptions=[lifecycle_sub])
        reconnected = await receive()
        assert reconnected["result"] == {"restored": True, "missed_events": 1}
        assert (await receive()) == lifecycle[1]

        await ws.send("not json")
        assert (await receive())["error"] == "invalid_argument"
        await send(7, "agent.getTree", run_id=run_id)
        tree = await receive()
        assert tree["id"] == 7 and tree["result"]["tree"]["status"] == "completed"

    # A socket on a thread that does not exist yet stays open (as langgraph-api's): its run.start creates it.
    async with connect(f"{base}/threads/{uuid.uuid4()}/stream/events") as ws:
        await ws.send(json.dumps({"id": 1, "method": "subscription.subscribe", "params": {"channels": ["lifecycle"]}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), OUTPUT_TIMEOUT))["type"] == "success"
        await ws.send(json.dumps({"id": 2, "method": "run.start", "params": {"assistant_id": "echo", "input": human("new")}}))
        answers = [json.loads(await asyncio.wait_for(ws.recv(), OUTPUT_TIMEOUT)) for _ in range(3)]
        assert answers[0]["type"] == "success"
        assert [a["params"]["data"]["event"] for a in answers[1:]] == ["running", "completed"]


async def test_sdk_transport_reopens_with_since_without_loss_or_duplicates(client) -> None:
    """What the SDK does after a dropped connection: reopen the events stream with `since=<last seq seen>`."""
    from langgraph_sdk.stream.transport import ProtocolSseTransport

    thread_id = str(uuid.uuid4())
    transport = ProtocolSseTransport(client=client.http.client, thread_id=thread_id)
    try:
        started = await transport.send_command(
            {"id": 1, "method": "run.start", "params": {"assistant_id": "slow", "input": {"steps": 3, "delay": 0.3}}}
        )
        assert started["type"] == "success"
        params = {"channels": ["values", "updates", "lifecycle", "tasks", "checkpoints"]}

        async def collect(stream_params: dict, stop_after: int | None = None) -> list[dict]:
            handle = transport.open_event_stream(stream_params)
            await handle.ready
            received: list[dict] = []
            try:
                async for event in handle.events:
                    received.append(event)
                    if root_terminal(event) or (stop_after is not None and len(received) == stop_after):
                        break
            finally:
                await handle.close()
            return received

        before = await asyncio.wait_for(collect(params, stop_after=4), OUTPUT_TIMEOUT)
        await asyncio.sleep(0.4)
        after = await asyncio.wait_for(collect({**params, "since": before[-1]["seq"]}), OUTPUT_TIMEOUT)
        whole = await asyncio.wait_for(collect(params), OUTPUT_TIMEOUT)
    finally:
        await transport.close()
    assert before + after == whole
    assert len({e["event_id"] for e in whole}) == len(whole)
    assert [e["seq"] for e in whole] == list(range(1, len(whole) + 1))


async def test_a_state_update_between_runs_is_not_part_of_the_protocol() -> None:
    """The thread log also holds the thread's own `state_update` events (thread streams send them); the protocol
    has no such event, and one between two runs must not count as a run of its own."""
    from aegra_server.serde import dumps

    def source_with(edit: bool) -> RunStream:
        source = RunStream("thread")
        for run_id in ("run-1", "run-2"):
            source.append("metadata", dumps({"run_id": run_id, "attempt": 1}))
            source.append("values", dumps({"n": run_id}))
            source.append("metadata", dumps({"status": "run_done", "run_id": run_id}))
            if edit and run_id == "run-1":
                source.append("state_update", dumps({"state": {"values": {"n": 0}}, "thread_id": "thread"}))
        return source

    logs = []
    for edit in (False, True):
        plog = ThreadProtocolLog("thread", source_with(edit))
        await plog.sync()
        logs.append([(e["method"], e["params"]["data"]) for e in _events(plog)])
    assert logs[1] == logs[0]


async def test_translations_past_their_byte_budget_go_least_recently_used_first_unless_followed() -> None:
    """Every token of a model's answer is an envelope: the translations of threads no reader follows are dropped,
    oldest first, once they hold more than the budget; a followed one stays (made anew it would number from 1)."""
    from types import SimpleNamespace

    from aegra_server.runs.stream import StreamRegistry
    from aegra_server.streaming.protocol import ProtocolRegistry

    streams = StreamRegistry()
    registry = ProtocolRegistry(SimpleNamespace(runs=SimpleNamespace(streams=streams)), retained_bytes=1_100)
    translations = {}
    with streams.thread_log("followed").followed():
        for thread_id in ("followed", "b", "c", "d"):
            streams.thread_log(thread_id).add(1, "values", b'{"text": "' + b"x" * 400 + b'"}')
            translations[thread_id] = registry.get(thread_id)
            await translations[thread_id].sync()
            assert translations[thread_id].size > 400
        registry.get("d")
        kept = {thread_id for thread_id, plog in translations.items() if registry.get(thread_id) is plog}
    assert kept == {"followed", "d"}
