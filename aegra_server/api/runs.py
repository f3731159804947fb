"""/threads/{id}/runs and stateless /runs: create, stream, wait, join, cancel, list, get, delete."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Literal, get_args

from fastapi import APIRouter, Header, HTTPException, Query, Response
from fastapi.responses import StreamingResponse

from aegra_server.api import schemas
from aegra_server.api.deps import ServicesDep
from aegra_server.api.http import JSONResponse, refuse_configurable_and_context, validate_uuid
from aegra_server.api.threads import forget_run
from aegra_server.auth import AuthDep, RequestAuth
from aegra_server.runs.execute import run_output as output_of
from aegra_server.runs.manager import public_kwargs
from aegra_server.runs.state_updates import EVENT as STATE_UPDATE
from aegra_server.runs.stream import Event
from aegra_server.serde import dumps
from aegra_server.services import Services
from aegra_server.storage.common import NotFound
from aegra_server.storage.runs import ACTIVE
from aegra_server.streaming.sse import HEARTBEAT, SSE_HEADERS, SSE_MEDIA_TYPE, frame

router = APIRouter(tags=["runs"])

_FIELDS = get_args(schemas.RunField)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    data = {k: row.get(k) for k in _FIELDS}
    if isinstance(data["kwargs"], dict):
        # The run's user (aegra_server.auth) is for its graph, not for whoever lists runs.
        data["kwargs"] = public_kwargs(data["kwargs"])
    return data


async def authorized_thread(
    services: Services, auth: RequestAuth, thread_id: str, resource_action: str, **value: Any
) -> dict[str, Any]:
    """Runs are their thread's: the thread's authorization for `resource_action` decides (hidden → 404).
    `value` is what the handler sees besides the thread id (run_id, a cancel's action)."""
    validate_uuid(thread_id, "thread_id")
    if value.get("run_id") is not None:
        validate_uuid(value["run_id"], "run_id")  # both ids are checked before either is looked up
    auth_filter = await auth.check("threads", resource_action, {"thread_id": thread_id, **value})
    return await services.repos.threads.get(thread_id, auth_filter=auth_filter)


def _run_path(run: dict[str, Any], stateless: bool = False) -> str:
    """The run's path for Content-Location (the SDKs read the run id from it) and the base of Location."""
    return f"/runs/{run['run_id']}" if stateless else f"/threads/{run['thread_id']}/runs/{run['run_id']}"


async def wait_output(services: Services, run_id: str, thread_id: str) -> Any:
    """Wait for a run to end, wherever it executes, and give what wait/join return."""
    outcome = await services.runs.wait_for(run_id)
    if outcome is not None:
        return output_of(outcome)
    run = await services.runs.wait_for_end(run_id)
    output = await _stored_output(services, run, thread_id)
    if run is not None:
        await services.runs.discard_temporary(run)  # a stateless run another process executed for this client
    return output


async def _stored_output(services: Services, run: dict[str, Any] | None, thread_id: str) -> Any:
    """What wait/join return for a run that ended elsewhere: its error, or its thread's state."""
    if run is not None and run["status"] == "error" and run.get("error"):
        return {"__error__": run["error"]}
    try:
        thread = await services.repos.threads.get(thread_id)
    except NotFound:  # a stateless run's thread, when a client elsewhere read it first
        return {}
    values = thread["values"] or {}
    pending = [interrupt for found in (thread["interrupts"] or {}).values() for interrupt in found]
    if pending and isinstance(values, dict):  # paused: as /wait answered while the run was live
        values = {**values, "__interrupt__": pending}
    return values


async def _respond_when_done(services: Services, output: asyncio.Future, headers: dict, on_disconnect=None) -> Response:
    """The output as JSON. If the run takes longer than a heartbeat, the body starts with a newline every
    heartbeat (as langgraph-api does) so proxies and clients keep the connection open.

    `on_disconnect` runs when the client leaves first. Only a response already streaming notices that, so with
    one the response streams from the start; without, a run done within a heartbeat is a plain JSON response."""
    heartbeat = services.settings.heartbeat_seconds
    if on_disconnect is None:
        try:
            return JSONResponse(await asyncio.wait_for(asyncio.shield(output), heartbeat), headers=headers)
        except TimeoutError:
            pass

    async def body() -> AsyncIterator[bytes]:
        finished = False
        try:
            while True:
                try:
                    result = await asyncio.wait_for(asyncio.shield(output), heartbeat)
                    break
                except TimeoutError:
                    yield b"\n"
            finished = True
            yield dumps(result)
        finally:
            if not finished:
                output.cancel()
                if on_disconnect is not None:
                    await on_disconnect()

    return StreamingResponse(body(), media_type="application/json", headers=headers)


async def _sse(
    services: Services, run: dict[str, Any], start: int | None, modes: set[str] | None = None, on_disconnect=None
) -> AsyncIterator[bytes]:
    resumable = bool(run["kwargs"].get("stream_resumable"))
    finished = False
    try:
        async for event in services.runs.follow(run["run_id"], start, services.settings.heartbeat_seconds):
            if event is None:
                yield HEARTBEAT
                continue
            if modes and event.name.split("|")[0].split("/")[0] not in modes and event.name not in ("metadata", "error"):
                continue
            yield frame(event.name, event.data, str(event.id) if resumable else None)
        finished = True
        await services.runs.discard_temporary(run)  # a stateless run another process executed for this client
    finally:
        if not finished and on_disconnect is not None:
            await on_disconnect()


def _canceller(services: Services, run: dict[str, Any], wanted: bool):
    if not wanted:
        return None

    async def cancel() -> None:
        services.runs.cancel_detached(run["run_id"])

    return cancel


# ---- create ------------------------------------------------------------------------------------------------


async def create_authorized(
    services: Services, auth: RequestAuth, thread_id: str | None, payload: dict[str, Any], *, awaited: bool = False
) -> dict[str, Any]:
    """Create a run as `threads.create_run` allows: the handler sees (and may stamp) the run's metadata, and its
    filter must let the thread through; the run carries the user to its graph. `awaited`: this request answers
    with the run's output or events (RunManager.create)."""
    refuse_configurable_and_context(payload.get("config"), payload.get("context"))
    thread_filter = None
    if auth.enabled:
        value = {
            "thread_id": thread_id,
            "assistant_id": payload.get("assistant_id"),
            "run_id": None,
            "status": "pending",
            "metadata": dict(payload.get("metadata") or {}),
            "prevent_insert_if_inflight": payload.get("multitask_strategy") == "reject",
            "multitask_strategy": payload.get("multitask_strategy"),
            "if_not_exists": payload.get("if_not_exists"),
            "after_seconds": payload.get("after_seconds"),
            "kwargs": {k: v for k, v in payload.items() if k not in ("metadata", "assistant_id")},
        }
        thread_filter = await auth.check("threads", "create_run", value)
        payload = {**payload, "metadata": value.get("metadata"), "auth": auth.run_context()}
    return await services.runs.create(thread_id, payload, thread_filter=thread_filter, awaited=awaited)


async def _create(
    services: Services, auth: RequestAuth, thread_id: str | None, body: schemas.RunCreate, awaited: bool = False
) -> dict[str, Any]:
    if thread_id is not None:
        validate_uuid(thread_id, "thread_id")
    return await create_authorized(services, auth, thread_id, body.payload(), awaited=awaited)


async def _respond_created(
    services: Services, auth: RequestAuth, thread_id: str | None, body: schemas.RunCreate
) -> JSONResponse:
    run = await _create(services, auth, thread_id, body)
    return JSONResponse(_public(run), headers={"Content-Location": _run_path(run, thread_id is None)})


async def _respond_stream(
    services: Services, auth: RequestAuth, thread_id: str | None, body: schemas.RunCreate
) -> StreamingResponse:
    run = await _create(services, auth, thread_id, body, awaited=True)
    path = _run_path(run, thread_id is None)
    events = _sse(services, run, 0, on_disconnect=_canceller(services, run, body.on_disconnect == "cancel"))
    headers = {**SSE_HEADERS, "Location": f"{path}/stream", "Content-Location": path}
    return StreamingResponse(events, media_type=SSE_MEDIA_TYPE, headers=headers)


async def _respond_wait(
    services: Services, auth: RequestAuth, thread_id: str | None, body: schemas.RunCreate
) -> Response:
    run = await _create(services, auth, thread_id, body, awaited=True)
    # Even for a stateless run, the paths of its (temporary) thread, as langgraph-api sends: the SDK follows
    # Location to rejoin a wait that was cut off, and only the thread's join route exists.
    path = _run_path(run)
    headers = {"Location": f"{path}/join", "Content-Location": path}
    output = asyncio.ensure_future(wait_output(services, run["run_id"], run["thread_id"]))
    return await _respond_when_done(
        services, output, headers, _canceller(services, run, body.on_disconnect == "cancel")
    )


@router.post("/threads/{thread_id}/runs")
async def create_run(thread_id: str, body: schemas.RunCreate, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    return await _respond_created(services, auth, thread_id, body)


@router.post("/threads/{thread_id}/runs/stream")
async def stream_run(
    thread_id: str, body: schemas.RunCreate, services: ServicesDep, auth: AuthDep
) -> StreamingResponse:
    return await _respond_stream(services, auth, thread_id, body)


@router.post("/threads/{thread_id}/runs/wait")
async def wait_run(thread_id: str, body: schemas.RunCreate, services: ServicesDep, auth: AuthDep) -> Response:
    return await _respond_wait(services, auth, thread_id, body)


@router.post("/runs")
async def create_stateless_run(body: schemas.RunCreate, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    return await _respond_created(services, auth, None, body)


@router.post("/runs/stream")
async def stream_stateless_run(body: schemas.RunCreate, services: ServicesDep, auth: AuthDep) -> StreamingResponse:
    return await _respond_stream(services, auth, None, body)


@router.post("/runs/wait")
async def wait_stateless_run(body: schemas.RunCreate, services: ServicesDep, auth: AuthDep) -> Response:
    return await _respond_wait(services, auth, None, body)


@router.post("/runs/batch")
async def create_run_batch(body: schemas.RunBatch, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    return JSONResponse([_public(await _create(services, auth, None, item)) for item in body])


# ---- observe and control -------------------------------------------------------------------------------------


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    thread_id: str,
    services: ServicesDep,
    auth: AuthDep,
    limit: int = Query(10, ge=0, le=1000),
    offset: int = Query(0, ge=0, le=schemas.MAX_OFFSET),
    status: Literal["pending", "running", "error", "success", "timeout", "interrupted"] | None = None,
    select: list[schemas.RunField] = Query(default_factory=list),
) -> JSONResponse:
    await authorized_thread(services, auth, thread_id, "read")
    found = [_public(r) for r in await services.repos.runs.list(thread_id, limit=limit, offset=offset, status=status)]
    return JSONResponse([{k: run[k] for k in select} for run in found] if select else found)


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_run(thread_id: str, run_id: str, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    await authorized_thread(services, auth, thread_id, "read", run_id=run_id)
    return JSONResponse(_public(await services.repos.runs.get(validate_uuid(run_id, "run_id"), thread_id)))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(thread_id: str, run_id: str, services: ServicesDep, auth: AuthDep) -> Response:
    await authorized_thread(services, auth, thread_id, "delete", run_id=run_id)
    await services.repos.runs.get(validate_uuid(run_id, "run_id"), thread_id)
    await services.runs.cancel(run_id, wait=True)
    await services.repos.runs.delete(run_id, thread_id)
    await forget_run(services, thread_id, run_id)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(
    thread_id: str, run_id: str, services: ServicesDep, auth: AuthDep, cancel_on_disconnect: bool = False
) -> Response:
    await authorized_thread(services, auth, thread_id, "read", run_id=run_id)
    run = await services.repos.runs.get(validate_uuid(run_id, "run_id"), thread_id)
    path = _run_path(run)
    headers = {"Location": f"{path}/join", "Content-Location": path}
    output = asyncio.ensure_future(wait_output(services, run_id, thread_id))
    return await _respond_when_done(services, output, headers, _canceller(services, run, cancel_on_disconnect))


def _modes(values: list[str]) -> set[str] | None:
    """stream_mode as repeated keys, one value, or a JSON array string (all seen from clients)."""
    modes: set[str] = set()
    for value in values:
        if not value:  # the SDK sends `stream_mode=` when it has none: that means every mode
            continue
        if value.startswith("["):
            try:
                modes.update(json.loads(value))
                continue
            except ValueError:
                pass
        modes.update(mode.strip() for mode in value.split(",") if mode.strip())  # langgraph-api takes `a,b` too
    if "messages-tuple" in modes:
        modes.add("messages")
    return modes or None


@router.get("/threads/{thread_id}/runs/{run_id}/stream")
async def join_run_stream(
    thread_id: str,
    run_id: str,
    services: ServicesDep,
    auth: AuthDep,
    stream_mode: list[str] = Query(default_factory=list),
    cancel_on_disconnect: bool = False,
    last_event_id: str | None = Header(None),
) -> StreamingResponse:
    await authorized_thread(services, auth, thread_id, "read", run_id=run_id)
    run = await services.repos.runs.get(validate_uuid(run_id, "run_id"), thread_id)
    start = None  # without Last-Event-ID: from now on
    if last_event_id is not None:
        try:
            start = max(int(last_event_id) + 1, 0)
        except ValueError:
            start = 0
    on_disconnect = _canceller(services, run, cancel_on_disconnect)
    events = _sse(services, run, start, _modes(stream_mode), on_disconnect)
    path = _run_path(run)
    headers = {**SSE_HEADERS, "Location": f"{path}/stream", "Content-Location": path}
    return StreamingResponse(events, media_type=SSE_MEDIA_TYPE, headers=headers)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    thread_id: str,
    run_id: str,
    services: ServicesDep,
    auth: AuthDep,
    wait: bool = False,
    action: str = Query("interrupt", pattern="^(interrupt|rollback)$"),
) -> Response:
    await authorized_thread(services, auth, thread_id, "update", run_id=run_id, action=action)
    run = await services.repos.runs.get(validate_uuid(run_id, "run_id"), thread_id)
    if run["status"] not in ACTIVE:  # as langgraph-api: an ended run has nothing to cancel
        raise NotFound(f"run {run_id} is {run['status']}: only a pending or running run can be cancelled")
    path = _run_path(run)
    headers = {"Content-Location": path, "Location": f"{path}/join"}
    # langgraph-api's words for the thread's error, the route's placeholders as they are.
    reason = f"{action} requested via POST /threads/{{thread_id}}/runs/{{run_id}}/cancel"
    await services.runs.cancel(run_id, action=action, wait=wait, reason=reason)
    if not wait:
        return Response(status_code=202, headers=headers)
    if action == "rollback":  # the run is gone, its steps too: no output, as langgraph-api answers
        return JSONResponse({}, headers=headers)
    return JSONResponse(await wait_output(services, run["run_id"], thread_id), headers=headers)


@router.post("/runs/cancel", status_code=204)
async def cancel_runs(
    body: schemas.RunsCancel,
    services: ServicesDep,
    auth: AuthDep,
    action: str = Query("interrupt", pattern="^(interrupt|rollback)$"),
) -> Response:
    # langgraph-api's two ways: every run in a status, or the listed runs of one thread.
    if body.status is not None and (body.thread_id or body.run_ids):
        raise HTTPException(422, "status cancels every run in that status: give it without thread_id and run_ids")
    if body.status is None and (body.thread_id is None or body.run_ids is None):
        raise HTTPException(422, "give status, or thread_id with run_ids")
    if body.thread_id is not None:
        validate_uuid(body.thread_id, "thread_id")
    for run_id in body.run_ids or ():
        validate_uuid(run_id, "run_ids")
    # Only runs of threads the caller may update are touched; the others are left alone, unmentioned.
    thread_filter = await auth.check("threads", "update", {"thread_id": body.thread_id, "action": action})
    cancelled = await services.runs.cancel_many(
        thread_id=body.thread_id,
        run_ids=body.run_ids,
        status=body.status or "all",
        action=action,
        thread_filter=thread_filter,
        reason=f"{action} requested via POST /runs/cancel",
    )
    if not cancelled:  # as langgraph-api: a criterion nothing pending or running matched
        raise NotFound("no pending or running run matches: nothing to cancel")
    return Response(status_code=204)


def _thread_key(last_event_id: str) -> int:
    """A thread stream's Last-Event-ID; anything else (`-1`) asks for everything."""
    try:
        return int(last_event_id)
    except ValueError:
        return -1


@router.get("/threads/{thread_id}/stream")
async def join_thread_stream(
    thread_id: str,
    services: ServicesDep,
    auth: AuthDep,
    stream_mode: list[str] = Query(default_factory=list),
    stream_modes: list[str] = Query(default_factory=list),
    last_event_id: str | None = Header(None),
) -> StreamingResponse:
    """Every run's events on the thread, live, each run ending with `metadata {"status": "run_done"}`.

    The SDK sends `stream_mode`, langgraph-api reads `stream_modes`: both are accepted. `run_modes` (the default)
    passes run events, `lifecycle` only the metadata events that start and end runs, `state_update` the thread's
    state after each edit of it (runs.state_updates).
    """
    await authorized_thread(services, auth, thread_id, "read")
    log = await services.runs.thread_log_with_history(thread_id)  # as the thread protocol reads it, on any process
    after = None if last_event_id is None else _thread_key(last_event_id)
    modes = _modes(stream_mode + stream_modes) or {"run_modes"}

    def framed(event: Event) -> bytes | None:
        if event.name == STATE_UPDATE:
            wanted = STATE_UPDATE in modes
        else:
            wanted = "run_modes" in modes or ("lifecycle" in modes and event.name == "metadata")
        return frame(event.name, event.data, str(event.id)) if wanted else None

    async def events() -> AsyncIterator[bytes]:
        # Ids are the same in every process (runs.stream.thread_key): a client resuming here may have read
        # elsewhere. Watched from the start, so that runs of other processes are copied in while history is read.
        with log.followed():
            last = after
            if after is not None and services.runs.bus.shared:
                for event in await services.runs.thread_history(thread_id, after):
                    if (framed_event := framed(event)) is not None:
                        yield framed_event
                    last = event.id
            async for event in log.follow(log.end if after is None else log.base, services.settings.heartbeat_seconds):
                if event is None:
                    yield HEARTBEAT
                elif last is not None and event.id <= last:
                    continue  # the client has it: it read it before, or it came from the database above
                else:
                    # Past what the client had: the log's order from here on, as every follower here sees it (a run
                    # another process took over goes on with ids this one had already sent of its lost work).
                    last = None
                    if (framed_event := framed(event)) is not None:
                        yield framed_event

    events = events()
    return StreamingResponse(events, media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS)
