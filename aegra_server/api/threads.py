"""/threads: CRUD, search/count, copy, state, history."""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter, HTTPException, Query, Request, Response
from langgraph.errors import InvalidUpdateError
from langgraph.graph import END
from langgraph.types import Command, StateSnapshot, StateUpdate

from aegra_server.api import extract, schemas
from aegra_server.api.deps import ServicesDep
from aegra_server.auth import AuthDep, RequestAuth, search_value
from aegra_server.api.http import JSONResponse, paged, validate_uuid
from aegra_server.serde import jsonable
from aegra_server.services import Services
from aegra_server.state import empty_state, interrupts_by_task, status_of, thread_state
from aegra_server.storage.checkpoints import copy_thread, delete_run_checkpoints, keep_latest, thread_storage
from aegra_server.storage.common import NotFound, new_id
from aegra_server.storage.threads import graph_config_of

# What a state edit the graph refuses raises: an unknown node, or values a channel's reducer cannot take ("x"
# added to a number, 5 as a message list). The caller's mistake, a 400, as langgraph-api answers.
REFUSED_UPDATES = (ValueError, KeyError, TypeError, NotImplementedError, InvalidUpdateError)

router = APIRouter(prefix="/threads", tags=["threads"])

# `error` (the last run's, or null) is in every thread, but not a field `select` may name: langgraph-api refuses it.
_FIELDS = (*get_args(schemas.ThreadField), "error")


def _public(row: dict[str, Any], select: list[str] | None = None) -> dict[str, Any]:
    data = {k: row.get(k) for k in _FIELDS}
    if data["values"] is None:
        data["values"] = {}
    return {k: data[k] for k in select if k in data} if select else data


async def _thread(
    services: Services, auth: RequestAuth, thread_id: str, action: str = "read", **value: Any
) -> dict[str, Any]:
    """The thread, if the caller may do `action` on it (a thread its authorization hides is a 404)."""
    validate_uuid(thread_id, "thread_id")
    auth_filter = await auth.check("threads", action, {"thread_id": thread_id, **value})
    return await services.repos.threads.get(thread_id, auth_filter=auth_filter)


async def _graph_of(services: Services, thread: dict[str, Any]):
    """The graph a thread runs (from the graph_id its first run stamped), or None for a thread never run; a factory
    builds it from the thread's config (storage.threads.graph_config_of)."""
    graph_id = thread["metadata"].get("graph_id")
    if not graph_id or graph_id not in services.registry:
        return None
    return await services.registry.graph(
        graph_id, graph_config_of(thread), checkpointer=services.checkpointer, store=services.store
    )


async def end_waiting(services: Services, thread: dict[str, Any]) -> None:
    """Leave the interrupt a thread waits at, as if its graph had ended there (A2A cancels a task waiting for input
    so): the thread is idle, its values as they were."""
    graph = await _graph_of(services, thread)
    if graph is not None:
        await graph.aupdate_state({"configurable": {"thread_id": thread["thread_id"]}}, None, as_node=END)
        await _sync_thread_state(services, thread["thread_id"], graph)


async def forget_run(services: Services, thread_id: str, run_id: str) -> None:
    """A deleted run leaves nothing in its thread's history (its checkpoints go, as langgraph-api removes them);
    the thread row shows the head that remains."""
    if not await delete_run_checkpoints(services.checkpointer, thread_id, run_id):
        return
    graph = await _graph_of(services, await services.repos.threads.get(thread_id))
    if graph is not None:
        await _sync_thread_state(services, thread_id, graph)


async def values_left_by(services: Services, thread: dict[str, Any], run_id: str) -> Any | None:
    """The thread's values as a run of it left them (the last checkpoint that run wrote: checkpoints carry their
    run's id in their metadata), or None when it wrote none or the thread's graph is not loaded."""
    graph = await _graph_of(services, thread)
    if graph is None:
        return None
    config = {"configurable": {"thread_id": thread["thread_id"]}}
    # Read to its end (one item): a history left half-read holds its database connection until collected.
    last = [snapshot async for snapshot in graph.aget_state_history(config, filter={"run_id": run_id}, limit=1)]
    return jsonable(last[0].values) if last else None


def _checkpoint_config(
    thread_id: str, checkpoint: schemas.CheckpointRef | None = None, checkpoint_id: str | None = None
) -> dict:
    """A LangGraph config for a checkpoint of this thread (the latest when none is named)."""
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint is not None:
        conf.update({k: v for k, v in checkpoint.model_dump().items() if v is not None and k != "thread_id"})
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


async def _sync_thread_state(services: Services, thread_id: str, graph) -> StateSnapshot:
    """Copy the head state into the thread row after an edit, so reads and `values` searches see it."""
    snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
    await services.repos.threads.set_state(
        thread_id,
        values=jsonable(snapshot.values),
        interrupts=interrupts_by_task(snapshot),
        status=status_of(snapshot),
    )
    return snapshot


@router.post("")
async def create_thread(body: schemas.ThreadCreate, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    if body.thread_id:
        validate_uuid(body.thread_id, "thread_id")
    ttl = body.ttl.model_dump() if body.ttl else None
    # The handler may stamp metadata (an owner, say); what it leaves in `value` is what is stored.
    value = {"thread_id": body.thread_id, "metadata": dict(body.metadata or {}), "if_exists": body.if_exists, "ttl": ttl}
    auth_filter = await auth.check("threads", "create", value)
    row, created = await services.repos.threads.create(
        thread_id=body.thread_id,
        metadata=value.get("metadata"),
        if_exists=body.if_exists,
        ttl=ttl,
        auth_filter=auth_filter,
    )
    if created and body.supersteps:
        try:
            graph = await _graph_of(services, row)
            if graph is None:
                raise HTTPException(422, "supersteps need metadata.graph_id naming a loaded graph")
            supersteps = [
                [StateUpdate(Command(**u.command) if u.command else u.values, u.as_node) for u in step.updates]
                for step in body.supersteps
            ]
            try:
                await graph.abulk_update_state({"configurable": {"thread_id": row["thread_id"]}}, supersteps)
            except REFUSED_UPDATES as exc:
                raise HTTPException(400, f"cannot apply supersteps: {type(exc).__name__}: {exc}") from None
        except BaseException:
            await services.runs.delete_thread_data(row["thread_id"])  # no half-made thread is left behind
            raise
        await _sync_thread_state(services, row["thread_id"], graph)
        row = await services.repos.threads.get(row["thread_id"])
    return JSONResponse(_public(row))


@router.post("/search")
async def search_threads(body: schemas.ThreadSearch, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    query = body.model_dump(exclude={"select", "extract"})
    auth_filter = await auth.check("threads", "search", search_value(query))
    page = await services.repos.threads.search(**query, auth_filter=auth_filter)
    found = [_public(r, body.select) for r in page.items]
    if body.extract:  # from the whole thread, whatever `select` keeps
        for thread, row in zip(found, page.items):
            thread["extracted"] = extract.extracted(_public(row), body.extract)
    return paged(page, found)


@router.post("/count")
async def count_threads(body: schemas.ThreadCount, services: ServicesDep, auth: AuthDep) -> int:
    query = body.model_dump()
    auth_filter = await auth.check("threads", "search", search_value(query))
    return await services.repos.threads.count(**query, auth_filter=auth_filter)


@router.post("/prune")
async def prune_threads(body: schemas.ThreadsPrune, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    """`delete` removes the threads; `keep_latest` keeps only each thread's newest checkpoint.

    Each thread is authorized as a delete (or, for keep_latest, an update); one the caller may not touch is
    skipped like a missing one."""
    pruned = 0
    action = "delete" if body.strategy == "delete" else "update"
    for thread_id in body.thread_ids:
        validate_uuid(thread_id, "thread_ids")
    for thread_id in body.thread_ids:
        try:
            await _thread(services, auth, thread_id, action)
        except NotFound:
            continue
        if body.strategy == "delete":
            await services.runs.cancel_thread(thread_id)
            await services.runs.delete_thread_data(thread_id)
        else:
            await keep_latest(services.checkpointer, thread_id)
        pruned += 1
    return JSONResponse({"pruned_count": pruned})


@router.get("/{thread_id}")
async def get_thread(thread_id: str, services: ServicesDep, auth: AuthDep, include: str = "") -> JSONResponse:
    """`include=ttl` adds the thread's time to live (`{strategy, ttl, expires_at}`, or null)."""
    row = await _thread(services, auth, thread_id)
    data = _public(row)
    if "ttl" in {part.strip() for part in include.split(",")}:
        data["ttl"] = {**row["ttl"], "expires_at": row["expires_at"]} if row.get("ttl") else None
    return JSONResponse(data)


@router.patch("/{thread_id}")
async def update_thread(
    thread_id: str, body: schemas.ThreadPatch, request: Request, services: ServicesDep, auth: AuthDep
) -> Response:
    validate_uuid(thread_id, "thread_id")
    ttl = body.ttl.model_dump() if body.ttl else None
    value = {"thread_id": thread_id, "metadata": dict(body.metadata or {}), "ttl": ttl}
    auth_filter = await auth.check("threads", "update", value)
    row = await services.repos.threads.update_metadata(
        thread_id, value.get("metadata") or {}, ttl, auth_filter=auth_filter
    )
    if "return=minimal" in request.headers.get("prefer", ""):
        return Response(status_code=204)
    return JSONResponse(_public(row))


@router.delete("/{thread_id}", status_code=204)
async def delete_thread(thread_id: str, services: ServicesDep, auth: AuthDep) -> Response:
    await _thread(services, auth, thread_id, "delete", run_id=None)
    await services.runs.cancel_thread(thread_id)
    await services.runs.delete_thread_data(thread_id)
    return Response(status_code=204)


@router.post("/{thread_id}/copy")
async def copy_thread_route(thread_id: str, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    source = await _thread(services, auth, thread_id)
    copy_id = new_id()
    # The copy is a new thread of the caller's: it is authorized (and stamped) as a create.
    value = {"thread_id": copy_id, "metadata": dict(source["metadata"]), "if_exists": "raise", "ttl": None}
    await auth.check("threads", "create", value)
    await services.repos.threads.create(thread_id=copy_id, metadata=value.get("metadata"))
    await copy_thread(services.checkpointer, thread_id, copy_id)
    await services.repos.threads.set_state(
        copy_id, values=source["values"], interrupts=source["interrupts"], status=source["status"] if source["status"] != "busy" else "idle"
    )
    return JSONResponse(_public(await services.repos.threads.get(copy_id)))


async def _state(
    services: Services, auth: RequestAuth, thread_id: str, config: dict, subgraphs: bool
) -> dict[str, Any]:
    thread = await _thread(services, auth, thread_id)
    graph = await _graph_of(services, thread)
    if graph is None:
        return empty_state(thread_id)
    return thread_state(await graph.aget_state(config, subgraphs=subgraphs))


@router.get("/{thread_id}/state")
async def get_state(thread_id: str, services: ServicesDep, auth: AuthDep, subgraphs: bool = False) -> JSONResponse:
    return JSONResponse(await _state(services, auth, thread_id, _checkpoint_config(thread_id), subgraphs))


@router.get("/{thread_id}/state/{checkpoint_id}")
async def get_state_at(
    thread_id: str, checkpoint_id: str, services: ServicesDep, auth: AuthDep, subgraphs: bool = False
) -> JSONResponse:
    config = _checkpoint_config(thread_id, checkpoint_id=checkpoint_id)
    return JSONResponse(await _state(services, auth, thread_id, config, subgraphs))


@router.post("/{thread_id}/state/checkpoint")
async def get_state_at_checkpoint(
    thread_id: str, body: schemas.CheckpointQuery, services: ServicesDep, auth: AuthDep
) -> JSONResponse:
    config = _checkpoint_config(thread_id, body.checkpoint)
    return JSONResponse(await _state(services, auth, thread_id, config, body.subgraphs))


@router.post("/{thread_id}/state")
async def update_state(
    thread_id: str, body: schemas.ThreadStateUpdate, services: ServicesDep, auth: AuthDep
) -> JSONResponse:
    thread = await _thread(services, auth, thread_id, "update")
    graph = await _graph_of(services, thread)
    if graph is None:
        raise HTTPException(400, f"thread {thread_id} has no graph yet: run it once, or create it with metadata.graph_id")
    # A run in flight would write over the edit, or read half of it: refused, as langgraph-api refuses it.
    in_flight = [run["run_id"] for run in await services.repos.runs.active(thread_id=thread_id)]
    if in_flight:
        raise HTTPException(409, f"thread {thread_id} has runs in flight: {', '.join(in_flight)}")
    config = _checkpoint_config(thread_id, body.checkpoint, body.checkpoint_id)
    config["configurable"]["graph_id"] = thread["metadata"]["graph_id"]  # in the new checkpoint's metadata, as runs'
    try:
        new_config = await graph.aupdate_state(config, body.values, as_node=body.as_node)
    except REFUSED_UPDATES as exc:
        raise HTTPException(400, f"cannot update state: {type(exc).__name__}: {exc}") from None
    snapshot = await _sync_thread_state(services, thread_id, graph)
    await services.runs.state_updates.announce(thread_id, thread_state(snapshot))
    written = new_config["configurable"]
    # `configurable` and `checkpoint_id` are deprecated spellings langgraph-api still sends for older clients.
    return JSONResponse({"checkpoint": written, "configurable": written, "checkpoint_id": written["checkpoint_id"]})


@router.get("/{thread_id}/storage")
async def get_storage(thread_id: str, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    """Bytes the thread's checkpoints occupy: checkpoints, channel values (in all, and per channel) and pending
    writes, each a count and bytes, and `total_bytes`, as langgraph-api reports them."""
    await _thread(services, auth, thread_id)
    return JSONResponse({"thread_id": thread_id, **await thread_storage(services.checkpointer, thread_id)})


async def _history(
    services: Services, auth: RequestAuth, thread_id: str, query: schemas.HistoryQuery
) -> list[dict[str, Any]]:
    thread = await _thread(services, auth, thread_id)
    graph = await _graph_of(services, thread)
    if graph is None:
        return []
    before = _checkpoint_config(thread_id, query.before) if query.before else None
    config = _checkpoint_config(thread_id, query.checkpoint)
    try:
        return [
            thread_state(s)
            async for s in graph.aget_state_history(config, filter=query.metadata, before=before, limit=query.limit)
        ]
    except ValueError as exc:  # the checkpointer refuses a filter key it cannot put in a query
        raise HTTPException(422, f"metadata: {exc}") from None


@router.post("/{thread_id}/history")
async def post_history(
    thread_id: str, body: schemas.HistoryQuery, services: ServicesDep, auth: AuthDep
) -> JSONResponse:
    return JSONResponse(await _history(services, auth, thread_id, body))


@router.get("/{thread_id}/history")
async def get_history(
    thread_id: str,
    services: ServicesDep,
    auth: AuthDep,
    limit: int = Query(10, ge=1, le=1000),
    before: str | None = None,
) -> JSONResponse:
    return JSONResponse(await _history(services, auth, thread_id, schemas.HistoryQuery(limit=limit, before=before)))
