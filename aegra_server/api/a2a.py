"""/a2a/{assistant_id}: each assistant as an A2A (Agent2Agent) agent over JSON-RPC, as langgraph-api serves it.

Both protocol versions are served on one URL: the 0.3 method names (`message/send`, `message/stream`,
`tasks/get`, `tasks/cancel`, `tasks/resubscribe`) are answered in 0.3's JSON, the 1.0 names (`SendMessage`,
`SendStreamingMessage`, `GetTask`, `CancelTask`, `SubscribeToTask`, `ListTasks`, `GetExtendedAgentCard`) in
1.0's (aegra_server/a2a/wire.py); the agent card (aegra_server/a2a/card.py) advertises both. Contexts are
threads and tasks runs (aegra_server/a2a/tasks.py). No push notifications, and no sessions: DELETE is the
router's 405 (as langgraph-api's, with the `Allow` header HTTP requires). Authorization is the HTTP API's:
reading the assistant, creating runs, reading and updating threads.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from aegra_server import serde
from aegra_server.a2a import content, wire
from aegra_server.a2a.card import CardError, agent_card
from aegra_server.a2a.tasks import TaskRef, task_object, tasks_in, thread_of
from aegra_server.a2a.wire import PartError
from aegra_server.api import jsonrpc
from aegra_server.api.assistants import readable_by_id_or_graph
from aegra_server.api.deps import ServicesDep
from aegra_server.api.http import JSONResponse
from aegra_server.api.jsonrpc import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR
from aegra_server.api.meta import installed_version
from aegra_server.api.runs import authorized_thread, create_authorized, wait_output
from aegra_server.api.schemas import RunCreate
from aegra_server.api.threads import end_waiting, values_left_by
from aegra_server.auth import AuthDep, RequestAuth, search_value
from aegra_server.services import Services
from aegra_server.storage.common import NotFound
from aegra_server.streaming.sse import HEARTBEAT, SSE_HEADERS, SSE_MEDIA_TYPE

router = APIRouter(tags=["a2a"])

TASK_NOT_FOUND, TASK_NOT_CANCELABLE, UNSUPPORTED_OPERATION, CONTENT_TYPE_NOT_SUPPORTED = -32001, -32002, -32004, -32005
V03_METHODS = {"message/send": "SendMessage", "message/stream": "SendStreamingMessage", "tasks/get": "GetTask",
               "tasks/cancel": "CancelTask", "tasks/resubscribe": "SubscribeToTask"}
METHODS = {"SendMessage", "SendStreamingMessage", "GetTask", "CancelTask", "ListTasks", "GetExtendedAgentCard",
           "SubscribeToTask"}
STREAMS = {"SendStreamingMessage", "SubscribeToTask"}  # answered as server-sent events
MAX_HISTORY = 100
MAX_TASK_RUNS = 1000  # a thread's runs read to find a task's latest (as langgraph-api)


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


# ---- the agent card ----------------------------------------------------------------------------------------------


def _card(request: Request, assistant: dict[str, Any]) -> JSONResponse:
    try:
        return JSONResponse(agent_card(str(request.base_url), assistant, installed_version("aegra")))
    except CardError as error:
        raise HTTPException(422, str(error)) from None


@router.get("/a2a/{assistant_id}/.well-known/agent-card.json")
@router.get("/a2a/{assistant_id}/.well-known/agent.json")
@router.get("/a2a/{assistant_id}")
@router.get("/a2a/{assistant_id}/", include_in_schema=False)
async def assistant_card(assistant_id: str, request: Request, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    return _card(request, await readable_by_id_or_graph(services, auth, assistant_id))


@router.get("/.well-known/agent-card.json")
async def server_card(
    request: Request, services: ServicesDep, auth: AuthDep, assistant_id: str | None = None
) -> JSONResponse:
    """The card of `?assistant_id=` (an id or a graph name); without it, of the only graph's assistant."""
    if assistant_id is None:
        if len(services.registry.ids) != 1:
            raise HTTPException(422, "assistant_id is required: the server has several graphs (an id or a graph name)")
        assistant_id = services.registry.ids[0]
    return _card(request, await readable_by_id_or_graph(services, auth, assistant_id))


# ---- JSON-RPC -----------------------------------------------------------------------------------------------------


@dataclass
class Call:
    services: Services
    auth: RequestAuth
    request: Request
    assistant: dict[str, Any]
    rpc_id: Any
    v03: bool  # answered in 0.3's JSON (the method came by its 0.3 name)

    def render(self, obj: dict[str, Any], *, wrapped: bool) -> dict[str, Any]:
        return obj if self.v03 else wire.to_v1(obj, wrapped=wrapped)

    def answer(self, result: dict[str, Any]) -> dict[str, Any]:
        return jsonrpc.response(self.rpc_id, {"result": result})


def _rpc_error(code: int, message: str, rpc_id: Any = None) -> dict[str, Any]:
    return jsonrpc.response(rpc_id, jsonrpc.error(code, message))


def _accepts(request: Request, media_type: str) -> bool:
    for media_range in (request.headers.get("accept") or "").split(","):
        candidate = media_range.split(";", 1)[0].strip().lower()
        if candidate in ("*/*", media_type) or (candidate.endswith("/*") and media_type.startswith(candidate[:-1])):
            return True
    return False


@router.post("/a2a/{assistant_id}")
@router.post("/a2a/{assistant_id}/", include_in_schema=False)
async def a2a_message(assistant_id: str, request: Request, services: ServicesDep, auth: AuthDep) -> Response:
    try:
        message = serde.loads(await request.body())
    except ValueError:
        return JSONResponse(_rpc_error(PARSE_ERROR, "Invalid JSON payload"))
    if not isinstance(message, dict):
        return JSONResponse(_rpc_error(INVALID_REQUEST, "Invalid message format: expected object"))
    rpc_id, method = message.get("id"), message.get("method")
    if message.get("jsonrpc") != "2.0":
        return JSONResponse(_rpc_error(INVALID_REQUEST, 'jsonrpc must be "2.0"', rpc_id))
    if rpc_id is not None and (not isinstance(rpc_id, (str, int, float)) or isinstance(rpc_id, bool)):
        return JSONResponse(_rpc_error(INVALID_REQUEST, "id must be a string, a number or null"))
    if method is None:
        if rpc_id is not None and ("result" in message or "error" in message):
            return Response(status_code=202)  # a response to a request this server never sends
        return JSONResponse(_rpc_error(INVALID_REQUEST, "the message has no method", rpc_id))
    if not isinstance(method, str) or V03_METHODS.get(method, method) not in METHODS:
        return JSONResponse(_rpc_error(METHOD_NOT_FOUND, f"Method not found: {method}", rpc_id))
    v03 = method in V03_METHODS
    name = V03_METHODS.get(method, method)
    if rpc_id is None:
        return JSONResponse(_rpc_error(INVALID_REQUEST, "A2A methods are requests: the message needs an id"))
    params = message.get("params", {})
    if not isinstance(params, dict):
        return JSONResponse(_rpc_error(INVALID_PARAMS, "params must be an object", rpc_id))
    streaming = name in STREAMS
    wanted = "text/event-stream" if streaming else "application/json"
    if not _accepts(request, wanted):
        return JSONResponse({"error": f"the Accept header must include {wanted}"}, status_code=400)
    try:
        assistant = await readable_by_id_or_graph(services, auth, assistant_id)
    except (NotFound, HTTPException):  # not there, or not even an id
        return JSONResponse(_rpc_error(INVALID_PARAMS, f"Assistant '{assistant_id}' not found", rpc_id))
    call = Call(services, auth, request, assistant, rpc_id, v03)
    if streaming:
        events = _stream(call, params) if name == "SendStreamingMessage" else _subscribe(call, params)
        return StreamingResponse(events, media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS)
    try:
        result = await HANDLERS[name](call, params)
    except RpcError as error:
        return JSONResponse(_rpc_error(error.code, error.message, rpc_id))
    return JSONResponse(call.answer(result))


# ---- tasks ------------------------------------------------------------------------------------------------------


def _string(params: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = params.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise RpcError(INVALID_PARAMS, f"{key} must be a non-empty string")
    return value


def _history_length(params: dict[str, Any]) -> int | None:
    length = params.get("historyLength")
    if length is None:
        return None
    if not isinstance(length, int) or isinstance(length, bool) or not 0 <= length <= MAX_HISTORY:
        raise RpcError(INVALID_PARAMS, f"historyLength must be an integer from 0 to {MAX_HISTORY}")
    return length


async def _thread_tasks(call: Call, thread_id: str) -> dict[str, TaskRef]:
    """The assistant's tasks in a thread the caller may read (none when it may not)."""
    try:
        thread = await authorized_thread(call.services, call.auth, thread_id, "read")
    except NotFound:
        return {}
    runs = await call.services.repos.runs.list(thread_id, limit=MAX_TASK_RUNS)  # newest first
    return tasks_in(call.assistant["assistant_id"], thread, runs)


async def _find_task(call: Call, task_id: str, context_id: str | None = None) -> TaskRef:
    """The task and its latest run, as the caller may read them; TaskNotFound otherwise."""
    context = task_id.rpartition(":")[0]
    found = None
    if context and (context_id is None or context_id == context):
        found = (await _thread_tasks(call, thread_of(context))).get(task_id)
    if found is None:
        raise RpcError(TASK_NOT_FOUND, f"Task not found: {task_id}")
    return found


async def _outcome(call: Call, ref: TaskRef) -> Any | None:
    """What an older completed task ended with: the values its run left, as the thread has moved on since (its
    latest task's outcome is the thread's values, which task_object reads itself)."""
    if ref.latest or ref.state != "completed":
        return None
    return await values_left_by(call.services, ref.thread, ref.run["run_id"])


async def get_task(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    task_id = _string(params, "id", required=True)
    length = _history_length(params)
    ref = await _find_task(call, task_id, _string(params, "contextId"))
    output = await _outcome(call, ref)
    return call.render(task_object(ref, call.assistant["assistant_id"], length, output=output), wrapped=False)


async def cancel_task(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    task_id = _string(params, "id", required=True)
    ref = await _find_task(call, task_id, _string(params, "contextId"))
    if ref.state in wire.TERMINAL:
        raise RpcError(TASK_NOT_CANCELABLE, f"Task is not cancelable: it is {ref.state}")
    if ref.state == "input-required":
        await _cancel_waiting(call, ref)
    else:
        run_id = ref.run["run_id"]
        await authorized_thread(call.services, call.auth, ref.thread["thread_id"], "update", run_id=run_id,
                                action="interrupt")
        await call.services.runs.cancel(run_id, action="interrupt", wait=True)
    ref = await _find_task(call, task_id)
    return call.render(task_object(ref, call.assistant["assistant_id"], 0), wrapped=False)


async def _cancel_waiting(call: Call, ref: TaskRef) -> None:
    """A task waiting for input has no run to stop. Its thread leaves the interrupt (idle, its values kept), and
    a run of the task that never starts, canceled at once, records it as canceled (as langgraph-api does)."""
    thread_id = ref.thread["thread_id"]
    await authorized_thread(call.services, call.auth, thread_id, "update", action="interrupt")
    marks = {"a2a": {"task_id": ref.task_id, "context_id": ref.context_id}}
    record = RunCreate(assistant_id=call.assistant["assistant_id"], metadata=marks, after_seconds=3600)
    run = await create_authorized(call.services, call.auth, thread_id, record.payload())
    await call.services.runs.cancel(run["run_id"], action="interrupt", wait=True)
    await end_waiting(call.services, ref.thread)


async def list_tasks(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """The assistant's tasks the caller may read, the most recently updated first: in one context, or in every
    thread this assistant has run on (threads carry their assistant in their metadata)."""
    context_id = _string(params, "contextId")
    size = params.get("pageSize", 50)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 100:
        raise RpcError(INVALID_PARAMS, "pageSize must be an integer from 1 to 100")
    token = params.get("pageToken") or "0"
    if not isinstance(token, str) or not token.isdigit():
        raise RpcError(INVALID_PARAMS, "pageToken must be one this method returned")
    wanted = params.get("status")
    states = {wire.V1_STATE[s]: s for s in wire.STATES} | {s: s for s in wire.STATES}
    if wanted not in (None, "", "TASK_STATE_UNSPECIFIED") and wanted not in states:
        raise RpcError(INVALID_PARAMS, f"status must be a task state, got {wanted!r}")
    length = _history_length(params)
    threads = [thread_of(context_id)] if context_id else await _assistants_threads(call)
    refs: dict[str, TaskRef] = {}
    for thread_id in threads:
        refs.update(await _thread_tasks(call, thread_id))
    chosen = [ref for ref in refs.values() if not wanted or wanted == "TASK_STATE_UNSPECIFIED"
              or ref.state == states[wanted]]
    chosen.sort(key=lambda ref: str(ref.run.get("updated_at") or ""), reverse=True)
    offset = int(token)
    page = chosen[offset:offset + size]
    tasks = []
    for ref in page:
        # An older task's outcome costs a checkpoint read: only when its artifacts or history are asked for.
        output = await _outcome(call, ref) if params.get("includeArtifacts") or length else None
        task = task_object(ref, call.assistant["assistant_id"], length or 0, output=output)
        if not params.get("includeArtifacts"):
            task.pop("artifacts", None)
        tasks.append(wire.to_v1(task, wrapped=False))
    following = offset + size if offset + size < len(chosen) else None
    return {"tasks": tasks, "totalSize": len(chosen), "pageSize": len(page),
            "nextPageToken": str(following) if following is not None else ""}


async def _assistants_threads(call: Call) -> list[str]:
    query = {"metadata": {"assistant_id": call.assistant["assistant_id"]}, "limit": 1000, "offset": 0}
    auth_filter = await call.auth.check("threads", "search", search_value(query))
    page = await call.services.repos.threads.search(**query, auth_filter=auth_filter)
    return [thread["thread_id"] for thread in page.items]


async def extended_card(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    try:
        return agent_card(str(call.request.base_url), call.assistant, installed_version("aegra"))
    except CardError as error:
        raise RpcError(INVALID_PARAMS, str(error)) from None


# ---- sending messages --------------------------------------------------------------------------------------------


@dataclass
class Sending:
    """A validated message/send: the run to create and the task it makes or continues."""

    message_id: str
    role: str
    parts: list[wire.Part]
    context_id: str
    task_id: str | None  # None: a new task, named after its run
    run: RunCreate


async def _sending(call: Call, params: dict[str, Any], stream_modes: list[str] | None = None) -> Sending:
    configuration = params.get("configuration")
    if configuration is not None and not isinstance(configuration, dict):
        raise RpcError(INVALID_PARAMS, "configuration must be an object")
    message = params.get("message")
    if not isinstance(message, dict):
        raise RpcError(INVALID_PARAMS, "message must be an object")
    message_id = _string(message, "messageId", required=True)
    role = _string(message, "role", required=True)
    raw_parts = message.get("parts")
    if not isinstance(raw_parts, list) or not raw_parts:
        raise RpcError(INVALID_PARAMS, "message.parts must be a non-empty array")
    try:
        parts = [wire.read_part(part) for part in raw_parts]
    except PartError as error:
        raise RpcError(CONTENT_TYPE_NOT_SUPPORTED, str(error)) from None
    context_id, task_id = _string(message, "contextId"), _string(message, "taskId")
    command, marks = None, {}  # marks: what the run's metadata says under `a2a`
    if task_id is not None:
        ref = await _find_task(call, task_id, context_id)
        if ref.state in wire.TERMINAL:
            raise RpcError(UNSUPPORTED_OPERATION, f"Task {task_id} is {ref.state}: send a message without taskId")
        context_id = ref.context_id
        marks["task_id"] = task_id
        if ref.state == "input-required":
            command = {"resume": _resume_value(parts)}
    if command is None:
        if any(not part.is_data for part in parts):
            await _check_takes_messages(call)
        try:
            graph_in = content.graph_input(parts, role, message_id)
        except PartError as error:
            raise RpcError(CONTENT_TYPE_NOT_SUPPORTED, str(error)) from None
    context_id = context_id or str(uuid.uuid4())
    try:
        run = RunCreate(
            assistant_id=call.assistant["assistant_id"],
            input=None if command else graph_in,
            command=command,
            metadata={"a2a": {**marks, "context_id": context_id}},
            context=params.get("context"),
            if_not_exists="create",
            **({"stream_mode": stream_modes} if stream_modes else {}),
        )
    except ValidationError as error:
        raise RpcError(INVALID_PARAMS, f"the message cannot be a run: {error.errors()[0]['msg']}") from None
    return Sending(message_id, role, parts, context_id, task_id, run)


def _resume_value(parts: list[wire.Part]) -> Any:
    """What answers an interrupt: a data part's `resume` value, else the message's text."""
    resumes = [part.data["resume"] for part in parts if part.is_data and isinstance(part.data, dict)
               and "resume" in part.data]
    if len(resumes) > 1:
        raise RpcError(INVALID_PARAMS, "Only one data part may carry a resume value")
    if resumes:
        return resumes[0]
    texts = [part.text for part in parts if part.text is not None]
    if not texts:
        raise RpcError(INVALID_PARAMS, "The task waits for input: send text, or a data part with 'resume'")
    return "\n".join(texts)


async def _check_takes_messages(call: Call) -> None:
    """Text and files become the graph's `messages`: a graph without that input key cannot take them."""
    assistant = call.assistant
    if assistant["graph_id"] not in call.services.registry:
        raise RpcError(INVALID_PARAMS, f"graph {assistant['graph_id']!r} is not loaded")
    schemas = await call.services.registry.schemas(assistant["graph_id"], assistant["config"])
    properties = (schemas.get("input_schema") or schemas.get("state_schema") or {}).get("properties") or {}
    if "messages" not in properties:
        raise RpcError(INVALID_PARAMS, f"Assistant '{assistant['assistant_id']}' (graph '{assistant['graph_id']}') "
                       f"takes no messages, so no text or file parts: send its input {sorted(properties)} "
                       "as a data part")


async def _start(call: Call, sending: Sending) -> tuple[dict[str, Any], str]:
    """Create the run: (its row, the task's id)."""
    try:
        run = await create_authorized(call.services, call.auth, thread_of(sending.context_id), sending.run.payload())
    except NotFound as error:
        raise RpcError(INVALID_PARAMS, str(error)) from None
    return run, sending.task_id or f"{sending.context_id}:{run['run_id']}"


async def send_message(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    sending = await _sending(call, params)
    configuration = params.get("configuration") or {}
    length = _history_length(configuration)
    run, task_id = await _start(call, sending)
    # 0.3 says `blocking: false`, 1.0 `returnImmediately: true`: answer with the task as it starts.
    if configuration.get("blocking") is False or configuration.get("returnImmediately") is True:
        task = wire.task(task_id, sending.context_id, wire.status("submitted"),
                         history=[_echo(sending, task_id)] if length != 0 else None)
        return call.render(task, wrapped=True)
    output = await wait_output(call.services, run["run_id"], run["thread_id"])
    ref = await _find_task(call, task_id)
    return call.render(task_object(ref, call.assistant["assistant_id"], length, output=output), wrapped=True)


def _echo(sending: Sending, task_id: str) -> dict[str, Any]:
    """The client's message as the task's first history entry (in 0.3's JSON, whichever it came in)."""
    role = "user" if sending.role in wire.USER_ROLES else "agent"
    parts = [wire.write_part(part) for part in sending.parts]
    return wire.message(role, parts, sending.message_id, task_id, sending.context_id)


def _event(call: Call, obj: dict[str, Any]) -> bytes:
    return b"data: " + serde.dumps(call.answer(call.render(obj, wrapped=True))) + b"\n\n"


def _error_event(call: Call, code: int, message: str) -> bytes:
    return b"data: " + serde.dumps(_rpc_error(code, message, call.rpc_id)) + b"\n\n"


async def _stream(call: Call, params: dict[str, Any]) -> AsyncIterator[bytes]:
    """message/stream: the task (submitted), then its progress. Errors before the run starts are one JSON-RPC
    error event (the stream has begun)."""
    try:
        sending = await _sending(call, params, ["messages-tuple", "values"])
        run, task_id = await _start(call, sending)
    except RpcError as error:
        yield _error_event(call, error.code, error.message)
        return
    except HTTPException as refused:  # the HTTP API's answer (its authorization, say)
        yield _error_event(call, INVALID_PARAMS, str(refused.detail))
        return
    history = [_echo(sending, task_id)]
    yield _event(call, wire.task(task_id, sending.context_id, wire.status("submitted"), history=history))
    async for chunk in _progress(call, run["run_id"], task_id, sending.context_id, start=0):
        yield chunk


async def _subscribe(call: Call, params: dict[str, Any]) -> AsyncIterator[bytes]:
    """tasks/resubscribe (1.0: SubscribeToTask), for a client whose stream broke: the task as it is now, then its
    progress from now on. A task that has ended has nothing more to tell (UnsupportedOperation)."""
    try:
        task_id = _string(params, "id", required=True)
        ref = await _find_task(call, task_id)
    except RpcError as error:
        yield _error_event(call, error.code, error.message)
        return
    if ref.state in wire.TERMINAL:
        yield _error_event(call, UNSUPPORTED_OPERATION, f"Task {task_id} is {ref.state}: it sends nothing more")
        return
    task = task_object(ref, call.assistant["assistant_id"], None)
    yield _event(call, task)
    if ref.state == "input-required":  # nothing runs until a message answers it
        yield _event(call, wire.status_update(task_id, ref.context_id, task["status"], final=True))
        return
    async for chunk in _progress(call, ref.run["run_id"], task_id, ref.context_id, start=None):
        yield chunk


async def _progress(call: Call, run_id: str, task_id: str, context_id: str, start: int | None) -> AsyncIterator[bytes]:
    """A run's events from `start` (None: from now on) as the task's progress: the agent's message as it grows
    (working; when the run streams messages), then the outcome once the run has ended: its artifact (the answer,
    or what an interrupt asks) and the final state, as the task then is."""
    texts: dict[str, str] = {}
    output: Any = None  # the run's last values, when it streams them
    async for item in call.services.runs.follow(run_id, start, call.services.settings.heartbeat_seconds):
        if item is None:
            yield HEARTBEAT
        elif item.name == "messages":
            chunk, _ = serde.loads(item.data)
            if not isinstance(chunk, dict) or chunk.get("type") not in content.AI_TYPES:
                continue
            parts = content.content_parts(chunk.get("content"))
            text = "".join(p["text"] for p in parts if p["kind"] == "text")
            if not text:
                continue
            key = chunk.get("id") or ""
            # Chunks of one streamed message add up; a whole message replaces what was there.
            texts[key] = texts.get(key, "") + text if chunk.get("type") == "AIMessageChunk" else text
            growing = wire.message("agent", [wire.text_part(texts[key])], str(uuid.uuid4()), task_id, context_id)
            yield _event(call, wire.status_update(task_id, context_id, wire.status("working", growing), final=False))
        elif item.name == "values":
            data = serde.loads(item.data)
            # An interrupt comes as values of its own; it joins the state the run reached.
            if isinstance(data, dict) and "__interrupt__" in data and isinstance(output, dict):
                output = {**output, "__interrupt__": data["__interrupt__"]}
            else:
                output = data
    try:
        ref = await _find_task(call, task_id)  # the run's end is stored before its events end
    except RpcError:
        return  # its thread was deleted meanwhile: there is no task to tell of
    task = task_object(ref, call.assistant["assistant_id"], 0, output=output)
    for artifact in task["artifacts"]:
        yield _event(call, wire.artifact_update(task_id, context_id, artifact))
    yield _event(call, wire.status_update(task_id, context_id, task["status"], final=True))


HANDLERS = {
    "SendMessage": send_message,
    "GetTask": get_task,
    "CancelTask": cancel_task,
    "ListTasks": list_tasks,
    "GetExtendedAgentCard": extended_card,
}
