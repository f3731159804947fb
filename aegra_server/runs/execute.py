"""Run one graph execution and translate LangGraph's stream into protocol events.

The graph always streams `values` (for the final output) and `updates` (to see interrupts) besides what the
client asked for; only requested modes are sent. An interrupt reaches the client in the `values` event that
LangGraph (>= 1.0.4) sends with the whole state and `__interrupt__`, and in `updates` when asked for, as
langgraph-api sends it with such a LangGraph.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessageChunk, message_chunk_to_message
from langgraph.types import Command, Send

from aegra_server.serde import dumps, error_of, jsonable
from aegra_server.state import checkpoint_of
from aegra_server.storage.connections import connection_lost
from aegra_server.storage.write_fence import LeaseLost
from aegra_server.runs.stream import RunStream

log = logging.getLogger("aegra.runs")

# Protocol stream mode → the LangGraph mode that produces it.
GRAPH_MODE = {
    "values": "values",
    "updates": "updates",
    "messages": "messages",
    "messages-tuple": "messages",
    "custom": "custom",
    "debug": "debug",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
    "tools": "tools",  # tool-call lifecycle (the thread streaming protocol's `tools` channel)
    "events": None,  # astream_events, not a stream mode
}


@dataclass
class Outcome:
    status: str  # success | error | interrupted | timeout, or retry: the database connection was lost
    # (or the run's lease lapsed: see RunManager._lapse_loop)
    values: Any = None
    interrupts: list[Any] = field(default_factory=list)
    error: dict[str, str] | None = None
    saw_interrupt: bool = False


def run_output(outcome: Outcome | None, thread_values: Any = None) -> Any:
    """What wait/join return: the final values, `__interrupt__` when paused, `__error__` when failed."""
    if outcome is None or outcome.status == "interrupted" and outcome.values is None:
        return thread_values if thread_values is not None else {}
    if outcome.error is not None:  # failed, or stopped at the run timeout
        return {"__error__": outcome.error}
    values = jsonable(outcome.values) if outcome.values is not None else {}
    if outcome.interrupts and isinstance(values, dict):
        values = {**values, "__interrupt__": jsonable(outcome.interrupts)}
    return values


def graph_input(kwargs: dict[str, Any]) -> Any:
    """The input a run passes to the graph: a Command when one is given (it wins over an empty input)."""
    command = kwargs.get("command")
    if command:
        goto = command.get("goto")
        if isinstance(goto, dict):
            goto = Send(goto["node"], goto.get("input"))
        elif isinstance(goto, list):
            goto = [Send(g["node"], g.get("input")) if isinstance(g, dict) else g for g in goto]
        return Command(update=command.get("update"), resume=command.get("resume"), goto=goto or ())
    return kwargs.get("input")


class EventWriter:
    """Serialises chunks into the run's log under the protocol's event names."""

    def __init__(self, stream: RunStream, requested: list[str], subgraphs: bool) -> None:
        self.stream = stream
        self.requested = set(requested)
        self.subgraphs = subgraphs
        self._messages: dict[str, BaseMessageChunk | Any] = {}

    def emit(self, name: str, payload: Any, ns: tuple[str, ...] = ()) -> None:
        if ns:
            name = "|".join((name, *ns))
        self.stream.append(name, dumps(payload))

    def chunk(self, ns: tuple[str, ...], mode: str, data: Any) -> None:
        if ns and not self.subgraphs:
            return
        if mode == "messages":
            if "messages-tuple" in self.requested:
                self.emit("messages", list(data), ns)
            if "messages" in self.requested:
                self._legacy_message(*data)
        elif mode == "debug":
            if mode in self.requested:
                self.emit("debug", _enrich_debug(data), ns)
        elif mode in self.requested:
            self.emit(mode, data, ns)

    def _legacy_message(self, message: Any, metadata: dict[str, Any]) -> None:
        """`messages` mode: metadata once per message id, then the message so far, accumulated and shown as a whole
        message (`"type": "ai"`, not a chunk), as langgraph-api sends it. Never namespaced, subgraphs' included:
        clients of this older mode match the bare event names."""
        msg_id = getattr(message, "id", None) or ""
        if msg_id not in self._messages:
            self.emit("messages/metadata", {msg_id: {"metadata": metadata}})
        if isinstance(message, BaseMessageChunk):
            previous = self._messages.get(msg_id)
            merged = previous + message if isinstance(previous, BaseMessageChunk) else message
            self._messages[msg_id] = merged
            self.emit("messages/partial", [message_chunk_to_message(merged)])
        else:
            self._messages[msg_id] = message
            self.emit("messages/complete", [message])


def _enrich_debug(event: Any) -> Any:
    """Debug checkpoint events carry `checkpoint` and `parent_checkpoint` objects, and a task that is a subgraph
    names the subgraph's checkpoint as `checkpoint` (LangGraph gives its config as `state`), as langgraph-api
    rewrites them; Studio reads them."""
    if isinstance(event, dict) and event.get("type") == "checkpoint":
        payload = dict(event.get("payload") or {})
        payload["checkpoint"] = checkpoint_of(payload.get("config"))
        payload["parent_checkpoint"] = checkpoint_of(payload.get("parent_config"))
        payload["tasks"] = [_debug_task(task) for task in payload.get("tasks") or []]
        return {**event, "payload": payload}
    return event


def _debug_task(task: Any) -> Any:
    state = task.get("state") if isinstance(task, dict) else None
    if not isinstance(state, dict) or not state.get("configurable"):
        return task
    return {**{k: v for k, v in task.items() if k != "state"}, "checkpoint": state["configurable"]}


def _split(item: Any, subgraphs: bool) -> tuple[tuple[str, ...], str, Any]:
    if subgraphs:
        ns, mode, data = item
        return tuple(ns), mode, data
    mode, data = item
    return (), mode, data


async def execute(graph: Any, kwargs: dict[str, Any], config: dict, context: Any, stream: RunStream) -> Outcome:
    requested = list(kwargs.get("stream_mode") or [])
    subgraphs = bool(kwargs.get("stream_subgraphs"))
    writer = EventWriter(stream, requested, subgraphs)
    modes = sorted({GRAPH_MODE[m] for m in requested if GRAPH_MODE.get(m)} | {"values", "updates"})
    options: dict[str, Any] = {
        "context": context,
        "stream_mode": modes,
        "subgraphs": subgraphs,
        "interrupt_before": kwargs.get("interrupt_before"),
        "interrupt_after": kwargs.get("interrupt_after"),
    }
    if kwargs.get("durability"):
        options["durability"] = kwargs["durability"]
    outcome = Outcome(status="success")
    try:
        async for ns, mode, data in _items(graph, graph_input(kwargs), config, options, writer, "events" in requested):
            if not ns:
                if mode == "values":
                    outcome.values = data
                elif mode == "updates" and isinstance(data, dict) and "__interrupt__" in data:
                    outcome.saw_interrupt = True
                    outcome.interrupts.extend(data["__interrupt__"])
            writer.chunk(ns, mode, data)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a graph's own failure ends the run, never the server
        outcome.error = error_of(exc)
        # Not the graph's failure: the caller tries again once the database is back and the run still its own.
        if connection_lost(exc) or isinstance(exc, LeaseLost):
            log.warning("the database connection was lost during the run: %s", exc)
            outcome.status = "retry"
            return outcome
        log.warning("the graph raised %s", type(exc).__name__, exc_info=True)  # whole, for whoever runs the server
        outcome.status = "error"
        writer.emit("error", outcome.error)
    return outcome


async def _items(graph, graph_in, config, options, writer: EventWriter, with_events: bool):
    subgraphs = options["subgraphs"]
    if not with_events:
        async for item in graph.astream(graph_in, config, **options):
            yield _split(item, subgraphs)
        return
    async for event in graph.astream_events(graph_in, config, version="v2", **options):
        if event.get("event") == "on_chain_stream" and not event.get("parent_ids"):
            yield _split(event["data"]["chunk"], subgraphs)
        else:
            writer.emit("events", event)
