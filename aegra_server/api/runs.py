"""/threads/{id}/runs and stateless /runs: create, stream, wait, join, cancel, list, get, delete."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from aegra_server.api import schemas
from aegra_server.api.deps import ServicesDep
from aegra_server.api.http import JSONResponse, validate_uuid
from aegra_server.runs.execute import run_output as output_of
from aegra_server.runs.manager import TERMINAL, Job
from aegra_server.runs.stream import RunStream
from aegra_server.serde import dumps, jsonable
from aegra_server.services import Services
from aegra_server.storage.common import NotFound
from aegra_server.streaming.sse import HEARTBEAT, SSE_HEADERS, SSE_MEDIA_TYPE, frame

router = APIRouter(tags=["runs"])

_FIELDS = ("run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status", "metadata", "kwargs", "multitask_strategy")


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in _FIELDS}


def _paths(job: Job, stateless: bool) -> tuple[str, str]:
    """(Content-Location, base for Location): the SDKs read the run id from the first."""
    base = f"/runs/{job.run_id}" if stateless else f"/threads/{job.thread_id}/runs/{job.run_id}"
    return base, base


async def _final_output(services: Services, thread_id: str, run_id: str) -> Any:
    """Wait for a run to end and give its output, whether it is in memory or finished long ago."""
    outcome = await services.runs.wait_for(run_id)
    if outcome is not None:
        return output_of(outcome)
    run = await services.repos.runs.get(run_id, thread_id)
    while run["status"] not in TERMINAL:  # owned by a process that no longer has it in memory
        await asyncio.sleep(0.5)
        run = await services.repos.runs.get(run_id, thread_id)
    thread = await services.repos.threads.get(thread_id)
    return thread["values"] or {}


def _waiting_response(services: Services, job_done: asyncio.Event, produce, headers: dict, on_disconnect_cancel) -> StreamingResponse:
    """A JSON body written when the run ends, with a newline every heartbeat meanwhile (as langgraph-api)."""
    heartbeat = services.settings.heartbeat_seconds

    async def body() -> AsyncIterator[bytes]:
        finished = False
        try:
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(job_done.wait()), heartbeat)
                    break
                except TimeoutError:
                    yield b"\n"
            output = await produce()
            finished = True
            yield dumps(output)
        finally:
            if not finished and on_disconnect_cancel is not None:
                await on_disconnect_cancel()

    return StreamingResponse(body(), media_type="application/json", headers=headers)


async def _sse(
    stream: RunStream, start: int, heartbeat: float, modes: set[str] | None = None, on_disconnect=None
) -> AsyncIterator[bytes]:
    try:
        async for event in stream.follow(start, heartbeat):
            if event is None:
                yield HEARTBEAT
                continue
            if modes and event.name.split("|")[0].split("/")[0] not in modes and event.name not in ("metadata", "error"):
                continue
            yield frame(event.name, event.data, str(event.id) if stream.resumable else None)
    finally:
        if on_disconnect is not None and not stream.done:
            await on_disconnect()


def _canceller(services: Services, job: Job, wanted: bool):
    if not wanted:
        return None

    async def cancel() -> None:
        await services.runs.cancel(job.run_id, action="interrupt")

    return cancel


# ---- create ------------------------------------------------------------------------------------------------


async def _create(services: Services, thread_id: str | None, body: schemas.RunCreate) -> Job:
    if thread_id is not None:
        validate_uuid(thread_id, "thread_id")
    return await services.runs.create(thread_id, body.payload())


async def _respond_created(services: Services, thread_id: str | None, body: schemas.RunCreate) -> JSONResponse:
    job = await _create(services, thread_id, body)
    content_location, _ = _paths(job, thread_id is None)
    return JSONResponse(_public(job.run), headers={"Content-Location": content_location})


async def _respond_stream(services: Services, thread_id: str | None, body: schemas.RunCreate) -> StreamingResponse:
    job = await _create(services, thread_id, body)
    content_location, base = _paths(job, thread_id is None)
    events = _sse(
        job.stream, 0, services.settings.heartbeat_seconds,
        on_disconnect=_canceller(services, job, body.on_disconnect == "cancel"),
    )
    headers = {**SSE_HEADERS, "Location": f"{base}/stream", "Content-Location": content_location}
    return StreamingResponse(events, media_type=SSE_MEDIA_TYPE, headers=headers)


async def _respond_wait(services: Services, thread_id: str | None, body: schemas.RunCreate) -> Response:
    job = await _create(services, thread_id, body)
    content_location, base = _paths(job, thread_id is None)
    headers = {"Location": f"{base}/join", "Content-Location": content_location}
    try:
        await asyncio.wait_for(asyncio.shield(job.done.wait()), services.settings.heartbeat_seconds)
    except TimeoutError:

        async def produce() -> Any:
            return output_of(job.outcome)

        return _waiting_response(
            services, job.done, produce, headers, _canceller(services, job, body.on_disconnect == "cancel")
        )
    return JSONResponse(output_of(job.outcome), headers=headers)


@router.post("/threads/{thread_id}/runs")
async def create_run(thread_id: str, body: schemas.RunCreate, services: ServicesDep) -> JSONResponse:
    return await _respond_created(services, thread_id, body)


@router.post("/threads/{thread_id}/runs/stream")
async def stream_run(thread_id: str, body: schemas.RunCreate, services: ServicesDep) -> StreamingResponse:
    return await _respond_stream(services, thread_id, body)


@router.post("/threads/{thread_id}/runs/wait")
async def wait_run(thread_id: str, body: schemas.RunCreate, services: ServicesDep) -> Response:
    return await _respond_wait(services, thread_id, body)


@router.post("/runs")
async def create_stateless_run(body: schemas.RunCreate, services: ServicesDep) -> JSONResponse:
    return await _respond_created(services, None, body)


@router.post("/runs/stream")
async def stream_stateless_run(body: schemas.RunCreate, services: ServicesDep) -> StreamingResponse:
    return await _respond_stream(services, None, body)


@router.post("/runs/wait")
async def wait_stateless_run(body: schemas.RunCreate, services: ServicesDep) -> Response:
    return await _respond_wait(services, None, body)


@router.post("/runs/batch")
async def create_run_batch(body: list[schemas.RunCreate], services: ServicesDep) -> JSONResponse:
    jobs = [await _create(services, None, item) for item in body]
    return JSONResponse([_public(job.run) for job in jobs])


# ---- observe and control -------------------------------------------------------------------------------------


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    thread_id: str,
    services: ServicesDep,
    limit: int = Query(10, ge=0, le=1000),
    offset: int = Query(0, ge=0),
    status: str | None = None,
) -> JSONResponse:
    await services.repos.threads.get(validate_uuid(thread_id, "thread_id"))
    return JSONResponse([_public(r) for r in await services.repos.runs.list(thread_id, limit=limit, offset=offset, status=status)])


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_run(thread_id: str, run_id: str, services: ServicesDep) -> JSONResponse:
    validate_uuid(thread_id, "thread_id")
    return JSONResponse(_public(await services.repos.runs.get(validate_uuid(run_id, "run_id"), thread_id)))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(thread_id: str, run_id: str, services: ServicesDep) -> Response:
    validate_uuid(thread_id, "thread_id")
    await services.repos.runs.get(validate_uuid(run_id, "run_id"), thread_id)
    await services.runs.cancel(run_id, wait=True)
    await services.repos.runs.delete(run_id, thread_id)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(thread_id: str, run_id: str, services: ServicesDep) -> Response:
    validate_uuid(thread_id, "thread_id")
    await services.repos.runs.get(validate_uuid(run_id, "run_id"), thread_id)
    job = services.runs.job(run_id)
    headers = {"Content-Location": f"/threads/{thread_id}/runs/{run_id}"}
    if job is None:
        return JSONResponse(await _final_output(services, thread_id, run_id), headers=headers)

    async def produce() -> Any:
        # The job leaves the manager once done, so read its outcome here rather than look it up again.
        return output_of(job.outcome) if job.outcome is not None else await _final_output(services, thread_id, run_id)

    return _waiting_response(services, job.done, produce, headers, None)


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
        modes.add(value)
    if "messages-tuple" in modes:
        modes.add("messages")
    return modes or None


@router.get("/threads/{thread_id}/runs/{run_id}/stream")
async def join_run_stream(
    thread_id: str,
    run_id: str,
    services: ServicesDep,
    stream_mode: list[str] = Query(default_factory=list),
    cancel_on_disconnect: bool = False,
    last_event_id: str | None = Header(None),
) -> StreamingResponse:
    validate_uuid(thread_id, "thread_id")
    await services.repos.runs.get(validate_uuid(run_id, "run_id"), thread_id)
    stream = services.runs.streams.get(run_id)
    if stream is None:  # finished long ago: nothing left to send
        stream = RunStream(run_id, done=True)
    start = stream.end
    if last_event_id is not None:
        try:
            start = max(int(last_event_id) + 1, 0)
        except ValueError:
            start = 0
    job = services.runs.job(run_id)
    on_disconnect = _canceller(services, job, cancel_on_disconnect) if job else None
    events = _sse(stream, start, services.settings.heartbeat_seconds, _modes(stream_mode), on_disconnect)
    headers = {**SSE_HEADERS, "Content-Location": f"/threads/{thread_id}/runs/{run_id}"}
    return StreamingResponse(events, media_type=SSE_MEDIA_TYPE, headers=headers)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    thread_id: str,
    run_id: str,
    services: ServicesDep,
    wait: bool = False,
    action: str = Query("interrupt", pattern="^(interrupt|rollback)$"),
) -> Response:
    validate_uuid(thread_id, "thread_id")
    run = await services.repos.runs.get(validate_uuid(run_id, "run_id"), thread_id)
    headers = {"Content-Location": f"/threads/{thread_id}/runs/{run_id}", "Location": f"/threads/{thread_id}/runs/{run_id}/join"}
    await services.runs.cancel(run_id, action=action, wait=wait)
    if not wait:
        return Response(status_code=202, headers=headers)
    if action == "rollback":
        return Response(status_code=204, headers=headers)
    try:
        output = await _final_output(services, thread_id, run["run_id"])
    except NotFound:
        output = {}
    return JSONResponse(output, headers=headers)


@router.post("/runs/cancel", status_code=204)
async def cancel_runs(
    body: schemas.RunsCancel,
    services: ServicesDep,
    action: str = Query("interrupt", pattern="^(interrupt|rollback)$"),
) -> Response:
    if body.thread_id is None and body.run_ids is None and body.status is None:
        raise HTTPException(422, "give thread_id, run_ids or status")
    await services.runs.cancel_many(
        thread_id=body.thread_id, run_ids=body.run_ids, status=body.status or "all", action=action
    )
    return Response(status_code=204)


@router.get("/threads/{thread_id}/stream")
async def join_thread_stream(
    thread_id: str,
    services: ServicesDep,
    stream_mode: list[str] = Query(default_factory=list),
    stream_modes: list[str] = Query(default_factory=list),
    last_event_id: str | None = Header(None),
) -> StreamingResponse:
    """Every run's events on the thread, live, each run ending with `metadata {"status": "run_done"}`.

    The SDK sends `stream_mode`, langgraph-api reads `stream_modes`: both are accepted. `run_modes` (the default)
    passes run events, `lifecycle` only the metadata events that start and end runs.
    """
    await services.repos.threads.get(validate_uuid(thread_id, "thread_id"))
    log = services.runs.streams.thread_log(thread_id)
    start = log.end
    if last_event_id is not None:
        try:
            start = max(int(last_event_id) + 1, 0)
        except ValueError:
            start = 0
    modes = _modes(stream_mode + stream_modes) or {"run_modes"}
    only = None if "run_modes" in modes else {"metadata"}
    events = _sse(log, start, services.settings.heartbeat_seconds, only)
    return StreamingResponse(events, media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS)
