"""The thread streaming protocol (the "v3" thread-centric protocol of `client.threads.stream()`): run events in,
protocol event envelopes out.

Every run on a thread writes its events to the thread log (`StreamRegistry.thread_log`). A `ThreadProtocolLog`
translates that log in order, exactly once, into envelopes as `langchain_protocol` defines them:

    {"type": "event", "method": "values", "seq": 12, "event_id": "12",
     "params": {"namespace": ["child:<task id>"], "timestamp": 1710000000000, "data": {...}}}

`seq` is a per-thread integer, consecutive from 1, shared by every reader of the thread, so a reader that drops can
come back with `since` and get exactly what it missed. A bounded tail of envelopes is kept per thread.

Channels and where they come from (the raw modes are those `aegra_server.runs.execute` writes, `|ns` suffixed):
- values: `values` chunks (state snapshots, without `__interrupt__`).
- updates: `updates` chunks, one event per node: `{"node": name, "values": update}`.
- messages: `messages` (message, metadata) tuples, reassembled into the content-block lifecycle
  (message-start, content-block-start/-delta/-finish, message-finish).
- tools: the `tools` stream mode (tool-started / tool-output-delta / tool-finished / tool-error).
- custom: `custom` writes; a dict payload is sent as it is (its `name` routes it to `custom:<name>`), anything
  else as `{"payload": value}`.
- tasks: `tasks` chunks as they are.
- checkpoints: `checkpoints` chunks reduced to `{"id", "parent_id", "step", "source"}`.
- lifecycle: root `running` when a run starts and `completed` / `failed` / `interrupted` when it ends;
  subgraphs `started` when their namespace first shows up and a terminal status when their task's result does.
- input: `input.requested` once per interrupt, `{"interrupt_id", "payload", "value"}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aegra_server.runs.stream import Tally
from aegra_server.serde import dumps, loads

log = logging.getLogger("aegra.protocol")

CHANNELS = frozenset({"values", "updates", "checkpoints", "messages", "tools", "custom", "lifecycle", "input", "tasks"})

# The stream modes a run started through the protocol asks the engine for (everything the channels are made of).
RUN_STREAM_MODES = ["values", "updates", "messages-tuple", "custom", "tasks", "checkpoints"]
RUN_EXTRA_STREAM_MODES = ["tools"]  # not in the REST schema's StreamMode, so added after validation

# Envelopes kept per thread for `since` replays, and threads whose translation is kept; and the most envelope data
# kept in all by the translations no reader follows now (a model's answer is an envelope per token).
PROTOCOL_LOG_EVENTS = 10_000
RETAINED_THREADS = 512
RETAINED_BYTES = 128 * 2**20
# Finished runs remembered per thread (for agent.getTree and interrupt checks).
RETAINED_RUNS = 32

_TERMINAL_OF_RUN_STATUS = {"success": "completed", "error": "failed", "timeout": "failed", "interrupted": "interrupted"}


# ---- filters ------------------------------------------------------------------------------------------------


def _normalize_segment(segment: str) -> str:
    name, _, _ = segment.partition(":")
    return name


def _prefix_match(namespace: tuple[str, ...], prefix: tuple[str, ...]) -> bool:
    """`prefix` leads `namespace`; a prefix segment without `:` also matches `name:<task id>` segments."""
    if len(prefix) > len(namespace):
        return False
    for want, have in zip(prefix, namespace):
        if want == have:
            continue
        if ":" in want or _normalize_segment(have) != want:
            return False
    return True


@dataclass(frozen=True)
class EventFilter:
    """What a subscription (an SSE connection, or one WebSocket subscription) receives."""

    channels: frozenset[str]
    namespaces: tuple[tuple[str, ...], ...] | None = None
    depth: int | None = None

    @classmethod
    def parse(cls, body: Any) -> EventFilter:
        """From `{channels, namespaces?, depth?}`; ValueError says what is wrong."""
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object with `channels`")
        channels = body.get("channels")
        if not isinstance(channels, list) or not channels or not all(isinstance(c, str) and c for c in channels):
            raise ValueError("`channels` must be a non-empty list of channel names")
        namespaces = body.get("namespaces")
        if namespaces is not None:
            if not isinstance(namespaces, list) or not all(
                isinstance(ns, list) and all(isinstance(s, str) for s in ns) for ns in namespaces
            ):
                raise ValueError("`namespaces` must be a list of namespaces (lists of strings)")
            namespaces = tuple(tuple(ns) for ns in namespaces)
        depth = body.get("depth")
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
            raise ValueError("`depth` must be a non-negative integer")
        return cls(frozenset(channels), namespaces or None, depth)

    def matches(self, event: ProtocolEvent) -> bool:
        channel = event.channel
        if channel not in self.channels and not (channel.startswith("custom:") and "custom" in self.channels):
            return False
        if self.namespaces is None:
            return self.depth is None or len(event.namespace) <= self.depth
        for prefix in self.namespaces:
            if _prefix_match(event.namespace, prefix) and (
                self.depth is None or len(event.namespace) - len(prefix) <= self.depth
            ):
                return True
        return False


def parse_since(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("`since` must be a non-negative integer (a seq)")
    return value


# ---- events -------------------------------------------------------------------------------------------------


@dataclass
class ProtocolEvent:
    seq: int
    method: str
    channel: str
    namespace: tuple[str, ...]
    payload: bytes  # the serialised envelope

    @property
    def envelope(self) -> dict[str, Any]:
        return loads(self.payload)


def _channel_of(method: str, data: Any) -> str:
    if method == "input.requested":
        return "input"
    if method == "custom":
        name = data.get("name") if isinstance(data, dict) else None
        return f"custom:{name}" if isinstance(name, str) and name else "custom"
    return method


# ---- per-run translation state ------------------------------------------------------------------------------


@dataclass
class _Block:
    index: int
    state: dict[str, Any]


@dataclass
class _Message:
    id: str
    namespace: tuple[str, ...]
    node: str | None
    blocks: dict[Any, _Block] = field(default_factory=dict)
    usage: dict[str, Any] | None = None
    response_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Subgraph:
    namespace: tuple[str, ...]
    graph_name: str
    status: str = "started"


@dataclass
class RunState:
    run_id: str | None
    graph_name: str | None = None
    status: str = "running"
    error: str | None = None
    interrupts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    subgraphs: dict[tuple[str, ...], _Subgraph] = field(default_factory=dict)
    messages: dict[str, _Message] = field(default_factory=dict)
    finished_messages: set[str] = field(default_factory=set)

    def tree(self) -> dict[str, Any]:
        """agent.getTree's AgentTreeNode for this run: the root graph with its subgraphs nested."""
        root: dict[str, Any] = {
            "namespace": [],
            "status": self.status,
            "graph_name": self.graph_name or "",
            "children": [],
            "metadata": {"run_id": self.run_id},
        }
        nodes: dict[tuple[str, ...], dict[str, Any]] = {(): root}
        for ns in sorted(self.subgraphs, key=len):
            sub = self.subgraphs[ns]
            node = {"namespace": list(ns), "status": sub.status, "graph_name": sub.graph_name, "children": []}
            nodes[ns] = node
            parent = next((nodes[ns[:i]] for i in range(len(ns) - 1, -1, -1) if ns[:i] in nodes), root)
            parent["children"].append(node)
        return root


# ---- content blocks of a message ----------------------------------------------------------------------------

_MESSAGE_TYPES: dict[str, tuple[str, str]] = {
    # serialised `type` -> (langchain_core class, protocol role)
    "ai": ("AIMessage", "ai"),
    "AIMessageChunk": ("AIMessageChunk", "ai"),
    "human": ("HumanMessage", "human"),
    "HumanMessageChunk": ("HumanMessageChunk", "human"),
    "system": ("SystemMessage", "system"),
    "SystemMessageChunk": ("SystemMessageChunk", "system"),
}
_HEAVY_FIELDS = {"args", "data", "output", "value", "transcript", "base64"}


def _content_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The message's protocol content blocks, as langchain_core computes them (`content_blocks`)."""
    class_name = _MESSAGE_TYPES.get(message.get("type", ""), ("AIMessageChunk", "ai"))[0]
    if class_name.endswith("Chunk"):
        # A chunk marked last would be read as a whole message (its tool-call slice parsed on its own); we want
        # the slice, and the end is taken from `chunk_position` by the caller.
        message = {k: v for k, v in message.items() if k not in ("chunk_position", "tool_calls", "invalid_tool_calls")}
    try:
        import langchain_core.messages as lc_messages

        blocks = getattr(lc_messages, class_name).model_validate(message).content_blocks
        return [dict(b) for b in blocks if isinstance(b, dict)]
    except Exception:  # an odd message is shown as its text rather than failing the stream
        content = message.get("content")
        if isinstance(content, str):
            return [{"type": "text", "text": content}] if content else []
        return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _block_key(block: dict[str, Any], position: int) -> Any:
    index = block.get("index")
    return ("~", block.get("type"), position) if index is None else index


def _start_of(block: dict[str, Any]) -> dict[str, Any]:
    kind = block.get("type")
    if kind == "text":
        return {**{k: v for k, v in block.items() if k not in ("text", "index", "annotations")}, "text": ""}
    if kind == "reasoning":
        return {**{k: v for k, v in block.items() if k not in ("reasoning", "index")}, "reasoning": ""}
    if kind in ("tool_call_chunk", "server_tool_call_chunk"):
        start = {"type": kind, "id": block.get("id"), "name": block.get("name"), "args": ""}
        if block.get("index") is not None:
            start["index"] = block["index"]
        return start
    start = {k: v for k, v in block.items() if k not in _HEAVY_FIELDS}
    if kind in ("tool_call", "server_tool_call"):
        start["args"] = {}
    elif kind == "non_standard":
        start["value"] = {}
    return start


def _delta_of(block: dict[str, Any]) -> dict[str, Any] | None:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text-delta", "text": block["text"]} if block.get("text") else None
    if kind == "reasoning":
        return {"type": "reasoning-delta", "reasoning": block["reasoning"]} if block.get("reasoning") else None
    if kind in ("tool_call_chunk", "server_tool_call_chunk"):
        return {"type": "tool-call-delta", "args": block["args"]} if block.get("args") else None
    if isinstance(block.get("data"), str) and block["data"]:
        return {"type": "data-delta", "data": block["data"], "encoding": "base64"}
    return None


def _accumulate(state: dict[str, Any] | None, block: dict[str, Any]) -> dict[str, Any]:
    if state is None:
        return dict(block)
    kind = state.get("type")
    if kind != block.get("type"):
        return dict(block)
    if kind in ("text", "reasoning"):
        state[kind] = (state.get(kind) or "") + (block.get(kind) or "")
        state.update({k: v for k, v in block.items() if k not in ("type", kind) and v is not None})
    elif kind in ("tool_call_chunk", "server_tool_call_chunk"):
        state["args"] = (state.get("args") or "") + (block.get("args") or "")
        for key in ("id", "name"):
            if block.get(key) is not None:
                state[key] = block[key]
    elif isinstance(block.get("data"), str):
        state["data"] = (state.get("data") or "") + block["data"]
    else:
        state.clear()
        state.update(block)
    return state


def _finished(block: dict[str, Any]) -> dict[str, Any]:
    kind = block.get("type")
    if kind not in ("tool_call_chunk", "server_tool_call_chunk"):
        return {k: v for k, v in block.items() if k != "index"}
    raw = block.get("args") or "{}"
    try:
        args = json.loads(raw)
    except ValueError:
        args = None
    if not isinstance(args, dict):
        return {
            "type": "invalid_tool_call",
            "id": block.get("id"),
            "name": block.get("name"),
            "args": raw,
            "error": "the tool call arguments are not a JSON object",
        }
    return {
        "type": "tool_call" if kind == "tool_call_chunk" else "server_tool_call",
        "id": block.get("id") or "",
        "name": block.get("name") or "",
        "args": args,
    }


def _add_usage(total: dict[str, Any] | None, usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return total
    total = dict(total or {})
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        if isinstance(usage.get(key), int):
            total[key] = total.get(key, 0) + usage[key]
    for key in ("input_token_details", "output_token_details"):
        if isinstance(usage.get(key), dict):
            total[key] = {**total.get(key, {}), **usage[key]}
    return total


def _scalar_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if v is None or isinstance(v, (bool, int, float, str))}


# ---- the per-thread log -------------------------------------------------------------------------------------


class ThreadProtocolLog:
    """Protocol envelopes for one thread, translated from its thread log (`source`)."""

    def __init__(
        self,
        thread_id: str,
        source: Any,
        *,
        first_seq: int = 1,
        describe_run: Callable[[str], Any] | None = None,
        run_status: Callable[[str], Any] | None = None,
    ) -> None:
        self.thread_id = thread_id
        self.source = source  # aegra_server.runs.stream.RunStream
        self.events: list[ProtocolEvent] = []
        self.size = 0  # bytes of the envelopes kept
        self.tally: Tally | None = None  # the registry's count of what its translations hold, kept up to date here
        self.next_seq = first_seq
        self.position = source.base
        self.runs: OrderedDict[str, RunState] = OrderedDict()
        self.current: RunState | None = None
        self.last_run: RunState | None = None
        self.latest_run_seq: int | None = None  # the seq of the latest run's `running` event
        self._describe_run = describe_run  # run_id -> graph name (async)
        self._run_status = run_status  # run_id -> run status or None (async)
        self._lock = asyncio.Lock()

    # ---- reading ---------------------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1

    def after(self, seq: int | None) -> list[ProtocolEvent]:
        """The retained envelopes with a seq above `seq` (all of them for None)."""
        if not self.events:
            return []
        first = self.events[0].seq
        start = 0 if seq is None else max(seq - first + 1, 0)
        return self.events[start:]

    def replay_start(self) -> int | None:
        """Where a reader that gives no `since` starts: just before the latest run began (so it sees that run
        whole, even if it is already over), or before everything retained when no run start is left."""
        if self.latest_run_seq is None or not self.events or self.latest_run_seq < self.events[0].seq:
            return None
        return self.latest_run_seq - 1

    async def wait(self, timeout: float) -> bool:
        """Until the thread log has events not yet translated (True) or `timeout` seconds pass (False)."""
        follower = self.source.follow(self.position, timeout)
        try:
            item = await follower.__anext__()
        except StopAsyncIteration:
            await asyncio.sleep(timeout)
            return False
        finally:
            await follower.aclose()
        return item is not None

    def interrupt_ids(self) -> dict[str, tuple[str, ...]]:
        """Interrupts of the run that is running, or else of the last run: what input.respond may answer."""
        run = self.current or self.last_run
        return dict(run.interrupts) if run is not None else {}

    def run(self, run_id: str | None) -> RunState | None:
        if run_id is None:
            return self.current or self.last_run
        return self.runs.get(run_id)

    # ---- translating -----------------------------------------------------------------------------------------

    async def sync(self) -> None:
        """Translate whatever the thread log gained since the last call."""
        async with self._lock:
            while True:
                source = self.source
                self.position = max(self.position, source.base)
                if self.position >= source.end:
                    return
                event = source.events[self.position - source.base]
                self.position += 1
                try:
                    await self._translate(event.name, event.data)
                except Exception:  # one odd event must not stop the thread's stream
                    log.exception("thread %s: cannot translate a %r event", self.thread_id, event.name)

    def _emit(self, method: str, namespace: Iterable[str], data: Any) -> None:
        ns = tuple(namespace)
        seq = self.next_seq
        self.next_seq += 1
        envelope = {
            "type": "event",
            "method": method,
            "params": {"namespace": list(ns), "timestamp": int(time.time() * 1000), "data": data},
            "seq": seq,
            "event_id": str(seq),
        }
        payload = dumps(envelope)
        self.events.append(ProtocolEvent(seq, method, _channel_of(method, data), ns, payload))
        self._holds(len(payload))
        if len(self.events) > PROTOCOL_LOG_EVENTS:
            cut = len(self.events) - PROTOCOL_LOG_EVENTS
            self._holds(-sum(len(event.payload) for event in self.events[:cut]))
            del self.events[:cut]

    def _holds(self, change: int) -> None:
        self.size += change
        if self.tally is not None:
            self.tally.bytes += change

    async def _translate(self, name: str, raw: bytes) -> None:
        mode, *rest = name.split("|")
        ns = tuple(rest)
        if mode == "metadata":
            data = loads(raw)
            if isinstance(data, dict) and data.get("status") == "run_done":
                await self._end_run(data.get("run_id"))
            elif isinstance(data, dict) and data.get("run_id"):
                await self._start_run(data["run_id"], data.get("attempt"))
            return
        handler = _HANDLERS.get(mode)
        if handler is None and mode != "error":
            return  # debug, events, legacy messages/*, the thread's own state_update: not part of the protocol
        run = self.current
        if run is None:  # events whose run start was trimmed away
            run = self.current = RunState(run_id=None)
        if mode == "error":
            data = loads(raw)
            if isinstance(data, dict):
                message = data.get("message") or data.get("error")
                run.error = f"{data.get('error')}: {message}" if data.get("error") and message else str(message)
            else:
                run.error = str(data)
            return
        data = loads(raw)
        if ns:
            self._discover(run, ns)
        handler(self, run, ns, data)

    # ---- runs ------------------------------------------------------------------------------------------------

    async def _start_run(self, run_id: str, attempt: Any) -> None:
        if self.current is not None and self.current.run_id != run_id:
            await self._end_run(self.current.run_id)  # its end never reached this log
        run = self.runs.get(run_id)
        if run is None:
            run = RunState(run_id=run_id)
            if self._describe_run is not None:
                try:
                    run.graph_name = await self._describe_run(run_id)
                except Exception:
                    log.debug("no graph name for run %s", run_id, exc_info=True)
            self.runs[run_id] = run
            while len(self.runs) > RETAINED_RUNS:
                self.runs.popitem(last=False)
        run.status = "running"
        self.current = run
        data: dict[str, Any] = {"event": "running", "run_id": run_id}
        if run.graph_name:
            data["graph_name"] = run.graph_name
        if isinstance(attempt, int) and attempt > 1:
            data["attempt"] = attempt
        self._emit("lifecycle", (), data)
        self.latest_run_seq = self.last_seq

    async def _end_run(self, run_id: str | None) -> None:
        run = self.runs.get(run_id) if run_id else self.current
        if run is None or run.status != "running":
            return
        status = None
        if self._run_status is not None and run.run_id is not None:
            try:
                status = await self._run_status(run.run_id)
            except Exception:
                log.debug("no status for run %s", run.run_id, exc_info=True)
        if run.error is not None or status in ("error", "timeout"):
            terminal = "failed"
        elif run.interrupts or status == "interrupted" or status == "deleted":
            terminal = "interrupted"  # paused for input, or cancelled (a rolled-back run is deleted)
        else:
            terminal = _TERMINAL_OF_RUN_STATUS.get(status or "success", "completed")
        for message in list(run.messages.values()):
            self._finish_message(run, message)
        for ns in sorted(run.subgraphs, key=len, reverse=True):
            if run.subgraphs[ns].status == "started":
                self._close_subgraph(run, ns, terminal, run.error if terminal == "failed" else None)
        run.status = terminal
        data: dict[str, Any] = {"event": terminal, "run_id": run.run_id}
        if run.graph_name:
            data["graph_name"] = run.graph_name
        if terminal == "failed":
            data["error"] = run.error or f"run {status}"
        self._emit("lifecycle", (), data)
        if self.current is run:
            self.current = None
        self.last_run = run

    # ---- subgraphs -------------------------------------------------------------------------------------------

    def _discover(self, run: RunState, ns: tuple[str, ...]) -> None:
        for depth in range(1, len(ns) + 1):
            prefix = ns[:depth]
            if prefix in run.subgraphs:
                continue
            graph_name, _, task_id = prefix[-1].partition(":")
            run.subgraphs[prefix] = _Subgraph(prefix, graph_name)
            data: dict[str, Any] = {"event": "started", "graph_name": graph_name}
            if task_id:
                data["trigger_call_id"] = task_id
            self._emit("lifecycle", prefix, data)

    def _close_subgraph(self, run: RunState, ns: tuple[str, ...], status: str, error: str | None) -> None:
        for other in sorted(run.subgraphs, key=len, reverse=True):  # the deepest first
            sub = run.subgraphs[other]
            if other[: len(ns)] != ns or sub.status != "started":
                continue
            for message in [m for m in run.messages.values() if m.namespace[: len(other)] == other]:
                self._finish_message(run, message)
            sub.status = status
            data: dict[str, Any] = {"event": status, "graph_name": sub.graph_name}
            if error:
                data["error"] = error
            self._emit("lifecycle", other, data)

    # ---- interrupts ------------------------------------------------------------------------------------------

    def _interrupts(self, run: RunState, ns: tuple[str, ...], items: Any) -> None:
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            interrupt_id = item.get("id") or item.get("interrupt_id")
            if not isinstance(interrupt_id, str) or interrupt_id in run.interrupts:
                continue
            run.interrupts[interrupt_id] = ns
            value = item.get("value")
            self._emit("input.requested", ns, {"interrupt_id": interrupt_id, "payload": value, "value": value})

    # ---- channel handlers ------------------------------------------------------------------------------------

    def _values(self, run: RunState, ns: tuple[str, ...], data: Any) -> None:
        if isinstance(data, dict) and "__interrupt__" in data:
            data = dict(data)
            self._interrupts(run, ns, data.pop("__interrupt__"))
            if not data:
                return
        self._emit("values", ns, data)

    def _updates(self, run: RunState, ns: tuple[str, ...], data: Any) -> None:
        if not isinstance(data, dict):
            self._emit("updates", ns, {"values": data})
            return
        for node, values in data.items():
            if node == "__interrupt__":
                self._interrupts(run, ns, values)
                continue
            # The node is done: its model calls are over.
            for message in [m for m in run.messages.values() if m.namespace == ns and m.node == node]:
                self._finish_message(run, message)
            self._emit("updates", ns, {"node": node, "values": values})

    def _custom(self, run: RunState, ns: tuple[str, ...], data: Any) -> None:
        self._emit("custom", ns, data if isinstance(data, dict) else {"payload": data})

    def _tasks(self, run: RunState, ns: tuple[str, ...], data: Any) -> None:
        self._emit("tasks", ns, data)
        if not isinstance(data, dict) or "result" not in data:
            return
        if data.get("interrupts"):
            self._interrupts(run, ns, data["interrupts"])
        task_id = data.get("id")
        for child in [c for c in run.subgraphs if len(c) == len(ns) + 1 and c[: len(ns)] == ns]:
            if task_id and child[-1].partition(":")[2] == task_id and run.subgraphs[child].status == "started":
                error = data.get("error")
                status = "interrupted" if data.get("interrupts") else "failed" if error else "completed"
                self._close_subgraph(run, child, status, str(error) if error else None)

    def _checkpoints(self, run: RunState, ns: tuple[str, ...], data: Any) -> None:
        if not isinstance(data, dict):
            return
        conf = (data.get("config") or {}).get("configurable") or {}
        parent = ((data.get("parent_config") or {}).get("configurable") or {}).get("checkpoint_id")
        metadata = data.get("metadata") or {}
        checkpoint: dict[str, Any] = {"id": conf.get("checkpoint_id"), "step": metadata.get("step", -1)}
        if parent:
            checkpoint["parent_id"] = parent
        checkpoint["source"] = metadata.get("source") or "loop"
        self._emit("checkpoints", ns, checkpoint)

    def _tools(self, run: RunState, ns: tuple[str, ...], data: Any) -> None:
        if isinstance(data, dict) and isinstance(data.get("event"), str):
            self._emit("tools", ns, data)

    # ---- messages --------------------------------------------------------------------------------------------

    def _messages(self, run: RunState, ns: tuple[str, ...], data: Any) -> None:
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            return
        message = data[0]
        metadata = data[1] if len(data) > 1 and isinstance(data[1], dict) else {}
        kind = message.get("type", "")
        if kind == "tool" or kind == "ToolMessageChunk" or kind not in _MESSAGE_TYPES:
            return  # tool results belong to the tools channel and to state
        message_id = message.get("id") or f"msg-{uuid.uuid4()}"
        if kind.endswith("Chunk"):
            self._message_chunk(run, ns, message_id, message, metadata)
            return
        open_message = run.messages.get(message_id)
        if open_message is not None:  # the whole message after its streamed chunks
            self._finish_message(run, open_message)
            return
        if message_id in run.finished_messages:
            return
        streamed = self._start_message(run, ns, message_id, message, metadata)
        for position, block in enumerate(_content_blocks(message)):
            self._message_block(streamed, _block_key(block, position), block)
        streamed.usage = _add_usage(None, message.get("usage_metadata"))
        self._finish_message(run, streamed)

    def _start_message(
        self, run: RunState, ns: tuple[str, ...], message_id: str, message: dict[str, Any], metadata: dict[str, Any]
    ) -> _Message:
        node = metadata.get("langgraph_node")
        streamed = _Message(message_id, ns, node if isinstance(node, str) else None)
        run.messages[message_id] = streamed
        keys = ("langgraph_node", "langgraph_step", "langgraph_checkpoint_ns")
        start_metadata = _scalar_metadata({k: metadata[k] for k in keys if k in metadata})
        start_metadata["run_id"] = run.run_id
        start_metadata["thread_id"] = self.thread_id
        response_metadata = message.get("response_metadata") or {}
        if isinstance(response_metadata.get("model_provider"), str):
            start_metadata["provider"] = response_metadata["model_provider"]
        if isinstance(response_metadata.get("model_name"), str):
            start_metadata["model"] = response_metadata["model_name"]
        role = _MESSAGE_TYPES[message.get("type", "ai")][1]
        self._emit(
            "messages",
            ns,
            {"event": "message-start", "role": role, "id": message_id, "metadata": _scalar_metadata(start_metadata)},
        )
        return streamed

    def _message_chunk(
        self, run: RunState, ns: tuple[str, ...], message_id: str, message: dict[str, Any], metadata: dict[str, Any]
    ) -> None:
        streamed = run.messages.get(message_id)
        if streamed is None:
            if message_id in run.finished_messages:
                return
            streamed = self._start_message(run, ns, message_id, message, metadata)
        if isinstance(message.get("response_metadata"), dict):
            streamed.response_metadata.update(message["response_metadata"])
        for position, block in enumerate(_content_blocks(message)):
            self._message_block(streamed, _block_key(block, position), block)
        streamed.usage = _add_usage(streamed.usage, message.get("usage_metadata"))
        if message.get("chunk_position") == "last":
            self._finish_message(run, streamed)

    def _message_block(self, streamed: _Message, key: Any, block: dict[str, Any]) -> None:
        known = streamed.blocks.get(key)
        if known is None:
            known = streamed.blocks[key] = _Block(len(streamed.blocks), dict(block))
            self._emit(
                "messages",
                streamed.namespace,
                {"event": "content-block-start", "id": streamed.id, "index": known.index, "content": _start_of(block)},
            )
        else:
            known.state = _accumulate(known.state, block)
        delta = _delta_of(block)
        if delta is not None:
            self._emit(
                "messages",
                streamed.namespace,
                {"event": "content-block-delta", "id": streamed.id, "index": known.index, "delta": delta},
            )

    def _finish_message(self, run: RunState, streamed: _Message) -> None:
        if run.messages.pop(streamed.id, None) is None:
            return
        run.finished_messages.add(streamed.id)
        for block in streamed.blocks.values():
            content = _finished(block.state)
            self._emit(
                "messages",
                streamed.namespace,
                {"event": "content-block-finish", "id": streamed.id, "index": block.index, "content": content},
            )
        finish: dict[str, Any] = {"event": "message-finish", "id": streamed.id}
        if streamed.usage:
            finish["usage"] = streamed.usage
        if streamed.response_metadata:
            finish["metadata"] = streamed.response_metadata
        self._emit("messages", streamed.namespace, finish)


_HANDLERS: dict[str, Callable[[ThreadProtocolLog, RunState, tuple[str, ...], Any], None]] = {
    "values": ThreadProtocolLog._values,
    "updates": ThreadProtocolLog._updates,
    "messages": ThreadProtocolLog._messages,
    "custom": ThreadProtocolLog._custom,
    "tasks": ThreadProtocolLog._tasks,
    "checkpoints": ThreadProtocolLog._checkpoints,
    "tools": ThreadProtocolLog._tools,
}


# ---- the registry -------------------------------------------------------------------------------------------


class ProtocolRegistry:
    """One ThreadProtocolLog per recently used thread, following that thread's log in the run engine."""

    def __init__(self, services: Any, retained_bytes: int = RETAINED_BYTES) -> None:
        self.services = services
        self._logs: OrderedDict[str, ThreadProtocolLog] = OrderedDict()
        self._tally = Tally()
        self._retained_bytes = retained_bytes

    def get(self, thread_id: str) -> ThreadProtocolLog:
        source = self.services.runs.streams.thread_log(thread_id)
        plog = self._logs.pop(thread_id, None)
        if plog is None or plog.source is not source:
            if plog is not None:
                self._let_go(plog)
            # A thread log dropped and made anew keeps the seqs going, so clients' cursors stay valid.
            plog = ThreadProtocolLog(
                thread_id,
                source,
                first_seq=plog.next_seq if plog is not None else 1,
                describe_run=self._graph_name,
                run_status=self._run_status,
            )
            plog.tally = self._tally
        self._logs[thread_id] = plog
        self._within_bounds()
        return plog

    def _within_bounds(self) -> None:
        """Drop the least recently used translations no reader follows (its thread log is then unwatched) until
        RETAINED_THREADS and the byte budget hold. One a reader follows stays: made anew, it would number from 1 and
        the reader's cursor would point past its end."""
        if len(self._logs) <= RETAINED_THREADS and self._tally.bytes <= self._retained_bytes:
            return
        for thread_id, plog in list(self._logs.items())[:-1]:  # not the one just asked for
            if len(self._logs) <= RETAINED_THREADS and self._tally.bytes <= self._retained_bytes:
                break
            if not plog.source.watched:
                del self._logs[thread_id]
                self._let_go(plog)

    def _let_go(self, plog: ThreadProtocolLog) -> None:
        self._tally.bytes -= plog.size
        plog.tally = None  # a reader still holding it no longer counts against the registry

    async def synced(self, thread_id: str) -> ThreadProtocolLog:
        if thread_id not in self._logs:  # new here: translated from the thread's history on, as everywhere
            await self.services.runs.thread_log_with_history(thread_id)
        plog = self.get(thread_id)
        await plog.sync()
        return plog

    async def _graph_name(self, run_id: str) -> str | None:
        job = self.services.runs.job(run_id)
        if job is not None:
            return job.graph_id
        run = await self.services.repos.runs.get(run_id)
        assistant = await self.services.repos.assistants.get(run["assistant_id"])
        return assistant["graph_id"]

    async def _run_status(self, run_id: str) -> str | None:
        from aegra_server.storage.common import NotFound

        try:
            return (await self.services.repos.runs.get(run_id))["status"]
        except NotFound:
            return "deleted"

    async def follow(
        self, thread_id: str, event_filter: EventFilter, since: int | None, heartbeat: float
    ) -> AsyncIterator[ProtocolEvent | None]:
        """The thread's envelopes after `since` that pass the filter, then live ones; None when `heartbeat` seconds
        pass with nothing new. Without `since`, the latest run's events are replayed first (see `replay_start`)."""
        plog = await self.synced(thread_id)
        # A seq from the future (a cursor from before a server restart) means "from now on".
        cursor = plog.replay_start() if since is None else min(since, plog.last_seq)
        while True:
            for event in plog.after(cursor):
                cursor = event.seq
                if event_filter.matches(event):
                    yield event
            if cursor is None:
                cursor = plog.last_seq
            changed = await plog.wait(heartbeat)
            if not changed:
                yield None
            plog = await self.synced(thread_id)


def registry_of(app: Any) -> ProtocolRegistry:
    """The app's registry, made on first use."""
    registry = getattr(app.state, "thread_protocol", None)
    if registry is None:
        registry = app.state.thread_protocol = ProtocolRegistry(app.state.services)
    return registry


__all__ = [
    "CHANNELS",
    "EventFilter",
    "ProtocolEvent",
    "ProtocolRegistry",
    "RUN_EXTRA_STREAM_MODES",
    "RUN_STREAM_MODES",
    "RunState",
    "ThreadProtocolLog",
    "parse_since",
    "registry_of",
]
