"""How a run's chunks become protocol events (runs.execute.EventWriter), for the shapes langgraph-api gives them."""

from __future__ import annotations

import json

from langchain_core.messages import AIMessageChunk

from aegra_server.runs.execute import EventWriter
from aegra_server.runs.stream import RunStream


def _written(requested: list[str], *chunks) -> list[tuple[str, object]]:
    stream = RunStream("run")
    writer = EventWriter(stream, requested, subgraphs=True)
    for chunk in chunks:
        writer.chunk(*chunk)
    return [(event.name, json.loads(event.data)) for event in stream.events]


def test_the_messages_mode_sends_whole_messages_and_never_namespaces_them() -> None:
    ns = ("child:1",)
    meta = {"langgraph_node": "chat"}
    events = _written(
        ["messages"],
        (ns, "messages", (AIMessageChunk(content="he", id="m1"), meta)),
        (ns, "messages", (AIMessageChunk(content="llo", id="m1"), meta)),
    )
    assert [name for name, _ in events] == ["messages/metadata", "messages/partial", "messages/partial"]
    [[first], [last]] = [data for name, data in events if name == "messages/partial"]
    assert (first["type"], first["content"]) == ("ai", "he")  # a message, not an AIMessageChunk
    assert (last["type"], last["content"], last["id"]) == ("ai", "hello", "m1")


def test_a_debug_checkpoints_subgraph_task_names_its_checkpoint() -> None:
    child = {"thread_id": "t", "checkpoint_ns": "child:1"}
    payload = {
        "config": {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c2"}},
        "parent_config": None,
        "tasks": [{"id": "1", "name": "child", "state": {"configurable": child}}, {"id": "2", "name": "plain"}],
    }
    [(name, event)] = _written(["debug"], ((), "debug", {"type": "checkpoint", "payload": payload}))
    assert name == "debug"
    tasks = event["payload"]["tasks"]
    assert tasks == [{"id": "1", "name": "child", "checkpoint": child}, {"id": "2", "name": "plain"}]
    assert event["payload"]["checkpoint"]["checkpoint_id"] == "c2"
