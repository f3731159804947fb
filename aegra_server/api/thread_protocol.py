"""The thread streaming protocol of `client.threads.stream()`: commands in, protocol events out.

- `POST /threads/{thread_id}/commands`: one command envelope `{id, method, params}` in, one response out:
  `{"type": "success", "id", "result", "meta": {"applied_through_seq"}}` or
  `{"type": "error", "id", "error": <code>, "message"}`. A body that is not a command envelope is a 400 with an
  error envelope; everything a command does wrong is answered with an error envelope (200), never a 500.
- `POST /threads/{thread_id}/stream/events`: body `{channels, namespaces?, depth?, since?}`; an SSE stream whose
  `event:` is the protocol method, `id:` the thread's integer seq and `data:` the whole event envelope. With
  `since` it replays the held events after that seq, without it the latest run's events (so a client that
  connects just after its run ended still sees the end); then it follows live until the client leaves. An empty
  or malformed body is a 400, an unknown thread a 404.
- WebSocket `/threads/{thread_id}/stream/events`: the same commands in-band, plus `subscription.subscribe`,
  `subscription.unsubscribe` and `subscription.reconnect`; events of every subscription on the socket.

Commands: run.start, input.respond, agent.getTree, state.get, state.listCheckpoints, state.fork. Subscriptions
over HTTP and input.inject are answered with `not_supported`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from aegra_server.api import schemas
from aegra_server.api.deps import ServicesDep
from aegra_server.api.http import JSONResponse, validate_uuid
from aegra_server.api.runs import create_authorized
from aegra_server.auth import AuthDep, AuthFailure, RequestAuth, request_auth
from aegra_server.runs.webhook_policy import WebhookRefused
from aegra_server.serde import dumps, jsonable
from aegra_server.services import Services
from aegra_server.storage.common import Conflict, NotFound
from aegra_server.streaming.protocol import (
    RUN_EXTRA_STREAM_MODES,
    RUN_STREAM_MODES,
    EventFilter,
    ProtocolRegistry,
    parse_since,
    registry_of,
)
from aegra_server.streaming.sse import HEARTBEAT, SSE_HEADERS, SSE_MEDIA_TYPE, frame

log = logging.getLogger("aegra.protocol")

router = APIRouter(tags=["threads"])

# run.start params passed on to the run as RunCreate fields (besides assistant_id, input, config, metadata).
_RUN_FIELDS = (
    "context",
    "command",
    "checkpoint",
    "checkpoint_id",
    "interrupt_before",
    "interrupt_after",
    "multitask_strategy",
    "webhook",
    "after_seconds",
    "durability",
)


# How long input.respond waits for an interrupt it does not know yet while the thread's run goes on.
RESPOND_WAIT_SECONDS = 5.0

# The caller's auth while a command runs (set by the HTTP route per request, by the WebSocket per connection):
# reads go through the thread's `read` authorization, runs through `create_run` (aegra_server.auth).
_AUTH: contextvars.ContextVar[RequestAuth | None] = contextvars.ContextVar("aegra_protocol_auth", default=None)


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _error(command_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "id": command_id, "error": code, "message": message}


def _success(command_id: Any, result: dict[str, Any], applied_through_seq: int | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"type": "success", "id": command_id, "result": result}
    if applied_through_seq is not None:
        response["meta"] = {"applied_through_seq": applied_through_seq}
    return response


def _command_id(command: Any) -> Any:
    value = command.get("id") if isinstance(command, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _envelope_problem(command: Any) -> str | None:
    """Why `command` is not a command envelope, or None."""
    if not isinstance(command, dict):
        return "a command is a JSON object {id, method, params}"
    if _command_id(command) is None:
        return "`id` must be a non-negative integer"
    if not isinstance(command.get("method"), str) or not command["method"]:
        return "`method` must be a string"
    if command.get("params") is not None and not isinstance(command["params"], dict):
        return "`params` must be an object"
    return None


# ---- commands -----------------------------------------------------------------------------------------------


def _run_payload(params: dict[str, Any], assistant_id: Any, **fields: Any) -> dict[str, Any]:
    """A RunCreate payload for a protocol run: every stream mode the channels need, subgraphs included."""
    if not isinstance(assistant_id, str) or not assistant_id:
        raise ProtocolError("invalid_argument", "`assistant_id` is required")
    extra = {k: params[k] for k in _RUN_FIELDS if params.get(k) is not None}
    extra.update(fields)
    try:
        body = schemas.RunCreate(
            assistant_id=assistant_id,
            input=params.get("input"),
            config=params.get("config"),
            metadata=params.get("metadata"),
            stream_mode=list(RUN_STREAM_MODES),
            stream_subgraphs=True,
            **extra,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ProtocolError("invalid_argument", problems) from None
    payload = body.payload()
    payload["stream_mode"] = [*payload["stream_mode"], *RUN_EXTRA_STREAM_MODES]
    return payload


async def _create_run(services: Services, registry: ProtocolRegistry, thread_id: str, payload: dict) -> tuple[str, int]:
    """Start a run; returns its id and the thread's last seq before it (what `since` must be to see all of it)."""
    plog = await registry.synced(thread_id)
    head = plog.last_seq
    auth = _AUTH.get()
    try:
        if auth is not None:
            created = await create_authorized(services, auth, thread_id, payload)
        else:
            created = await services.runs.create(thread_id, payload)
    except NotFound as exc:
        raise ProtocolError("invalid_argument", str(exc)) from None
    except Conflict as exc:
        raise ProtocolError("invalid_argument", str(exc)) from None
    except HTTPException as exc:
        raise ProtocolError("invalid_argument", str(exc.detail)) from None
    except WebhookRefused as exc:
        raise ProtocolError("invalid_argument", f"webhook refused: {exc}") from None
    run = getattr(created, "run", created)  # a row, or a Job carrying one
    return run["run_id"], head


async def _thread(services: Services, thread_id: str) -> dict[str, Any]:
    auth = _AUTH.get()
    try:
        auth_filter = await auth.check("threads", "read", {"thread_id": thread_id}) if auth is not None else None
        return await services.repos.threads.get(thread_id, auth_filter=auth_filter)
    except NotFound:
        raise ProtocolError("invalid_argument", f"thread {thread_id} not found") from None


async def _visible(services: Services, thread_id: str, auth_filter: Any) -> bool | None:
    """Whether the caller may read the thread: True, False (it exists, not for this caller), or None when there
    is no such thread yet. A subscription may wait for a thread that does not exist: the SDK's threads.stream()
    mints the id and subscribes before run.start creates it, as langgraph-api allows; its events are shown only
    once the thread exists and is the caller's to read."""
    try:
        await services.repos.threads.get(thread_id, auth_filter=auth_filter)
        return True
    except NotFound:
        if auth_filter is None:
            return None
    try:
        await services.repos.threads.get(thread_id)
        return False
    except NotFound:
        return None


async def _assistant_of(services: Services, thread: dict[str, Any]) -> str:
    assistant_id = (thread.get("metadata") or {}).get("assistant_id")
    if assistant_id:
        return assistant_id
    runs = await services.repos.runs.list(thread["thread_id"], limit=1)
    if runs:
        return runs[0]["assistant_id"]
    graph_id = (thread.get("metadata") or {}).get("graph_id")
    if graph_id:
        return graph_id
    raise ProtocolError("invalid_argument", f"thread {thread['thread_id']} has never run: start a run first")


async def _run_start(services: Services, registry: ProtocolRegistry, thread_id: str, params: dict) -> tuple[dict, int]:
    assistant_id = params.get("assistant_id", params.get("assistantId"))
    payload = _run_payload(params, assistant_id, if_not_exists="create")
    run_id, head = await _create_run(services, registry, thread_id, payload)
    return {"run_id": run_id}, head


async def _input_respond(
    services: Services, registry: ProtocolRegistry, thread_id: str, params: dict
) -> tuple[dict, int]:
    if isinstance(params.get("responses"), list):
        answers = params["responses"]
    else:
        answers = [{k: params.get(k) for k in ("namespace", "interrupt_id", "response")}]
    if not answers:
        raise ProtocolError("invalid_argument", "`responses` is empty")
    for answer in answers:
        if not isinstance(answer, dict) or not isinstance(answer.get("interrupt_id"), str):
            raise ProtocolError("invalid_argument", "each response needs an `interrupt_id`")
    thread, pending = await _pending_interrupts(services, registry, thread_id, {a["interrupt_id"] for a in answers})
    unknown = [a["interrupt_id"] for a in answers if a["interrupt_id"] not in pending]
    if unknown:
        raise ProtocolError("no_such_interrupt", f"no pending interrupt {', '.join(unknown)} on thread {thread_id}")
    if len(answers) == 1 and len(pending) == 1:
        resume = answers[0].get("response")
    else:
        resume = {a["interrupt_id"]: a.get("response") for a in answers}
    command: dict[str, Any] = {"resume": resume}
    if params.get("update") is not None:
        command["update"] = params["update"]
    if params.get("goto") is not None:
        command["goto"] = params["goto"]
    payload = _run_payload(
        {k: params.get(k) for k in ("config", "metadata")}, await _assistant_of(services, thread), command=command
    )
    run_id, head = await _create_run(services, registry, thread_id, payload)
    return {"run_id": run_id}, head


async def _pending_interrupts(
    services: Services, registry: ProtocolRegistry, thread_id: str, wanted: set[str]
) -> tuple[dict[str, Any], set[str]]:
    """The thread and the ids of its pending interrupts, once they include `wanted` or the thread has no run going
    on (or RESPOND_WAIT_SECONDS pass). A client answers as soon as `input.requested` reaches it: possibly before
    the run has ended, and, when processes share the database, before this one has the run's events."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RESPOND_WAIT_SECONDS
    while True:
        thread = await _thread(services, thread_id)
        plog = await registry.synced(thread_id)
        pending = set(plog.interrupt_ids())
        for task_interrupts in (thread.get("interrupts") or {}).values():
            pending.update(i["id"] for i in task_interrupts or [] if isinstance(i, dict) and i.get("id"))
        if wanted <= pending or thread["status"] != "busy" or loop.time() >= deadline:
            return thread, pending
        await plog.wait(0.25)


async def _agent_get_tree(registry: ProtocolRegistry, thread_id: str, params: dict) -> tuple[dict, int]:
    plog = await registry.synced(thread_id)
    run_id = params.get("run_id")
    run = plog.run(run_id if isinstance(run_id, str) else None)
    if run is None:
        message = f"no run {run_id} on thread {thread_id}" if run_id else "no run on this thread yet"
        raise ProtocolError("no_such_run", message)
    return {"tree": run.tree()}, plog.last_seq


async def _graph_for(services: Services, thread: dict[str, Any]):
    graph_id = (thread.get("metadata") or {}).get("graph_id")
    if not graph_id or graph_id not in services.registry:
        return None
    config = {"configurable": {"thread_id": thread["thread_id"]}}
    return await services.registry.graph(graph_id, config, checkpointer=services.checkpointer, store=services.store)


def _namespace(params: dict) -> list[str]:
    namespace = params.get("namespace") or []
    if not isinstance(namespace, list) or not all(isinstance(s, str) for s in namespace):
        raise ProtocolError("invalid_argument", "`namespace` must be a list of strings")
    return namespace


async def _state_get(services: Services, thread_id: str, params: dict) -> dict:
    namespace = _namespace(params)
    graph = await _graph_for(services, await _thread(services, thread_id))
    if graph is None:
        return {"values": {}}
    snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}}, subgraphs=bool(namespace))
    for segment in namespace:  # down the pending tasks to the subgraph's state
        name, _, task_id = segment.partition(":")
        found = None
        for task in snapshot.tasks:
            if task.name == name and (not task_id or task.id == task_id) and hasattr(task.state, "values"):
                found = task.state
                break
        if found is None:
            raise ProtocolError("no_such_namespace", f"no subgraph state at {namespace}")
        snapshot = found
    values = jsonable(snapshot.values) if snapshot.values is not None else {}
    keys = params.get("keys")
    if isinstance(keys, list) and isinstance(values, dict):
        values = {k: v for k, v in values.items() if k in keys}
    result: dict[str, Any] = {"values": values}
    conf = (snapshot.config or {}).get("configurable") or {}
    if conf.get("checkpoint_id"):
        result["checkpoint"] = {"id": conf["checkpoint_id"], "ns": conf.get("checkpoint_ns", "")}
    return result


async def _state_list_checkpoints(services: Services, thread_id: str, params: dict) -> dict:
    namespace = _namespace(params)
    graph = await _graph_for(services, await _thread(services, thread_id))
    if graph is None:
        return {"checkpoints": []}
    limit = params.get("limit")
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None
    before = params.get("before")
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": "|".join(namespace)}}
    checkpoints = []
    async for snapshot in graph.aget_state_history(
        config, limit=limit, before={"configurable": {"checkpoint_id": before}} if isinstance(before, str) else None
    ):
        conf = (snapshot.config or {}).get("configurable") or {}
        metadata = jsonable(snapshot.metadata or {})
        summary: dict[str, Any] = {
            "id": conf.get("checkpoint_id"),
            "timestamp": snapshot.created_at,
            "step": metadata.get("step", -1),
            "metadata": metadata,
        }
        parent = ((snapshot.parent_config or {}).get("configurable") or {}).get("checkpoint_id")
        if parent:
            summary["parent_id"] = parent
        checkpoints.append(summary)
    return {"checkpoints": checkpoints}


async def _state_fork(services: Services, registry: ProtocolRegistry, thread_id: str, params: dict) -> tuple[dict, int]:
    checkpoint_id = params.get("checkpoint_id")
    if not isinstance(checkpoint_id, str) or not checkpoint_id:
        raise ProtocolError("invalid_argument", "`checkpoint_id` is required")
    thread = await _thread(services, thread_id)
    assistant_id = await _assistant_of(services, thread)
    payload = _run_payload({k: params.get(k) for k in ("input", "config")}, assistant_id, checkpoint_id=checkpoint_id)
    run_id, head = await _create_run(services, registry, thread_id, payload)
    return {"run_id": run_id, "thread_id": thread_id}, head


_SUBSCRIPTIONS = ("subscription.subscribe", "subscription.unsubscribe", "subscription.reconnect")


async def run_command(services: Services, registry: ProtocolRegistry, thread_id: str, command: dict) -> dict[str, Any]:
    """The response envelope for one (well-formed) command envelope."""
    command_id = _command_id(command)
    method = command["method"]
    params = command.get("params") or {}
    try:
        if method == "run.start":
            result, seq = await _run_start(services, registry, thread_id, params)
        elif method == "input.respond":
            result, seq = await _input_respond(services, registry, thread_id, params)
        elif method == "agent.getTree":
            if _AUTH.get() is not None:
                await _thread(services, thread_id)  # the run tree is the thread's: a read
            result, seq = await _agent_get_tree(registry, thread_id, params)
        elif method == "state.get":
            result, seq = await _state_get(services, thread_id, params), None
        elif method == "state.listCheckpoints":
            result, seq = await _state_list_checkpoints(services, thread_id, params), None
        elif method == "state.fork":
            result, seq = await _state_fork(services, registry, thread_id, params)
        elif method in _SUBSCRIPTIONS:
            raise ProtocolError(
                "not_supported",
                "subscriptions belong to a connection: open POST /threads/{thread_id}/stream/events with the filter, "
                "or send subscription commands on the WebSocket",
            )
        elif method == "input.inject":
            raise ProtocolError("not_supported", "input.inject is not supported: answer interrupts with input.respond")
        else:
            raise ProtocolError("unknown_command", f"unknown command {method!r}")
    except ProtocolError as exc:
        return _error(command_id, exc.code, exc.message)
    except AuthFailure as exc:
        return _error(command_id, "permission_denied" if exc.status_code == 403 else "unknown_error", exc.detail)
    except Exception:
        # The cause goes to the log, never to the client.
        log.exception("thread %s: command %s failed", thread_id, method)
        return _error(command_id, "unknown_error", "the command failed on the server")
    return _success(command_id, result, seq)


# ---- HTTP -----------------------------------------------------------------------------------------------------


def _body_json(raw: bytes) -> Any:
    if not raw.strip():
        raise ValueError("the body is empty")
    try:
        return json.loads(raw)
    except ValueError:
        raise ValueError("the body is not JSON") from None


@router.post("/threads/{thread_id}/commands")
async def thread_command(thread_id: str, request: Request, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    validate_uuid(thread_id, "thread_id")
    try:
        command = _body_json(await request.body())
    except ValueError as exc:
        return JSONResponse(_error(None, "invalid_argument", str(exc)), status_code=400)
    problem = _envelope_problem(command)
    if problem is not None:
        return JSONResponse(_error(_command_id(command), "invalid_argument", problem), status_code=400)
    token = _AUTH.set(auth if auth.enabled else None)
    try:
        return JSONResponse(await run_command(services, registry_of(request.app), thread_id, command))
    finally:
        _AUTH.reset(token)


@router.post("/threads/{thread_id}/stream/events")
async def thread_events(thread_id: str, request: Request, services: ServicesDep, auth: AuthDep) -> StreamingResponse:
    validate_uuid(thread_id, "thread_id")
    try:
        body = _body_json(await request.body())
        event_filter = EventFilter.parse(body)
        since = parse_since(body.get("since"))
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    auth_filter = await auth.check("threads", "read", {"thread_id": thread_id})
    visible = await _visible(services, thread_id, auth_filter)
    if visible is False:
        raise NotFound(f"thread {thread_id} not found")
    registry = registry_of(request.app)

    async def events() -> AsyncIterator[bytes]:
        nonlocal visible
        async for event in registry.follow(thread_id, event_filter, since, services.settings.heartbeat_seconds):
            if event is not None and not visible:  # subscribed before the thread existed: may it be seen now?
                visible = await _visible(services, thread_id, auth_filter)
                if not visible:
                    return
            yield HEARTBEAT if event is None else frame(event.method, event.payload, str(event.seq))

    return StreamingResponse(events(), media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS)


# ---- WebSocket ------------------------------------------------------------------------------------------------


class _Socket:
    """One WebSocket: its subscriptions and a cursor; events go out once each, to whichever subscription wants them.

    Everything that sends holds `lock`, so a subscribe's replay and the live pump never interleave or repeat.
    """

    def __init__(self, websocket: WebSocket, registry: ProtocolRegistry, thread_id: str, visible) -> None:
        self.websocket = websocket
        self.registry = registry
        self.thread_id = thread_id
        # Before any event goes out: whether the caller may see the thread (a thread subscribed to before it
        # existed is checked once it has events; see _visible).
        self.visible = visible
        self.subscriptions: dict[str, EventFilter] = {}
        self.cursor = 0
        self.lock = asyncio.Lock()

    async def send(self, message: dict[str, Any] | bytes) -> None:
        await self.websocket.send_text((message if isinstance(message, bytes) else dumps(message)).decode())

    async def pump(self) -> None:
        """Live events for the subscriptions (caller holds the lock): everything after the cursor."""
        plog = await self.registry.synced(self.thread_id)
        if plog.last_seq > self.cursor and not await self.visible():
            await self.websocket.close(code=4404, reason=f"thread {self.thread_id} not found")
            raise WebSocketDisconnect(4404)
        for event in plog.after(self.cursor):
            self.cursor = event.seq
            if any(f.matches(event) for f in self.subscriptions.values()):
                await self.send(event.payload)

    async def follow(self, heartbeat: float) -> None:
        while True:
            plog = self.registry.get(self.thread_id)
            if plog.last_seq <= self.cursor:
                await plog.wait(heartbeat)
            async with self.lock:
                await self.pump()

    async def command(self, services: Services, command: dict[str, Any]) -> None:
        method = command["method"]
        command_id = _command_id(command)
        params = command.get("params") or {}
        async with self.lock:
            await self.pump()
            if method == "subscription.subscribe":
                try:
                    event_filter = EventFilter.parse(params)
                    since = parse_since(params.get("since"))
                except ValueError as exc:
                    await self.send(_error(command_id, "invalid_argument", str(exc)))
                    return
                subscription_id = str(uuid.uuid4())
                self.subscriptions[subscription_id] = event_filter
                plog = self.registry.get(self.thread_id)
                start = plog.replay_start() if since is None else since
                pending = [e for e in plog.after(start) if e.seq <= self.cursor and event_filter.matches(e)]
                result = {"subscription_id": subscription_id, "replayed_events": len(pending)}
                await self.send(_success(command_id, result, self.cursor))
                for event in pending:
                    await self.send(event.payload)
            elif method == "subscription.unsubscribe":
                subscription_id = params.get("subscription_id")
                if self.subscriptions.pop(subscription_id, None) is None:
                    await self.send(_error(command_id, "no_such_subscription", f"no subscription {subscription_id!r}"))
                else:
                    await self.send(_success(command_id, {}, self.cursor))
            elif method == "subscription.reconnect":
                wanted = params.get("subscriptions")
                if not isinstance(wanted, list):
                    wanted = list(self.subscriptions)
                wanted = [s for s in wanted if isinstance(s, str)]
                filters = [self.subscriptions[s] for s in wanted if s in self.subscriptions]
                try:
                    last = int(params["last_event_id"]) if params.get("last_event_id") is not None else None
                except (TypeError, ValueError):
                    last = None
                plog = self.registry.get(self.thread_id)
                missed = [e for e in plog.after(last) if e.seq <= self.cursor and any(f.matches(e) for f in filters)]
                restored = bool(wanted) and len(filters) == len(wanted)
                await self.send(_success(command_id, {"restored": restored, "missed_events": len(missed)}, self.cursor))
                for event in missed:
                    await self.send(event.payload)
            else:
                await self.send(await run_command(services, self.registry, self.thread_id, command))


@router.websocket("/threads/{thread_id}/stream/events")
async def thread_events_socket(websocket: WebSocket, thread_id: str) -> None:
    services: Services = websocket.app.state.services
    auth = request_auth(websocket)
    await websocket.accept()
    try:
        uuid.UUID(thread_id)
        auth_filter = await auth.check("threads", "read", {"thread_id": thread_id})
        visible_at_start = await _visible(services, thread_id, auth_filter)
        if visible_at_start is False:
            raise NotFound(thread_id)
        # Commands on this socket act as its user (see _AUTH); this handler's context is the socket's.
        _AUTH.set(auth if auth.enabled else None)
    except AuthFailure as exc:
        await websocket.close(code=4000 + exc.status_code, reason=exc.detail[:120])
        return
    except ValueError:
        await websocket.close(code=4422, reason="thread_id must be a UUID")
        return
    except NotFound:
        await websocket.close(code=4404, reason=f"thread {thread_id} not found")
        return
    registry = registry_of(websocket.app)
    seen = bool(visible_at_start)  # a thread that does not exist yet is checked once it has events

    async def visible() -> bool:
        nonlocal seen
        seen = seen or bool(await _visible(services, thread_id, auth_filter))
        return seen

    socket = _Socket(websocket, registry, thread_id, visible)
    socket.cursor = (await registry.synced(thread_id)).last_seq
    follower = asyncio.create_task(socket.follow(services.settings.heartbeat_seconds))
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            try:
                command = json.loads(message.get("text") or message.get("bytes") or b"")
            except ValueError:
                command = None
            problem = _envelope_problem(command)
            if problem is not None:
                async with socket.lock:
                    await socket.send(_error(_command_id(command), "invalid_argument", problem))
                continue
            await socket.command(services, command)
    except WebSocketDisconnect:
        pass
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await follower
