"""/assistants: CRUD, versions, search/count and graph introspection."""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter, HTTPException, Query, Response

from aegra_server.api import schemas
from aegra_server.api.deps import ServicesDep
from aegra_server.auth import AuthDep, RequestAuth, search_value
from aegra_server.api.http import JSONResponse, paged, refuse_configurable_and_context, validate_uuid
from aegra_server.graphs import NotAnAssistant
from aegra_server.services import Services
from aegra_server.storage.common import NotFound

router = APIRouter(prefix="/assistants", tags=["assistants"])

_FIELDS = get_args(schemas.AssistantField)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in _FIELDS}


async def _readable(services: Services, auth: RequestAuth, assistant_id: str) -> dict[str, Any]:
    validate_uuid(assistant_id, "assistant_id")
    auth_filter = await auth.check("assistants", "read", {"assistant_id": assistant_id})
    return await services.repos.assistants.get(assistant_id, auth_filter=auth_filter)


async def readable_by_id_or_graph(services: Services, auth: RequestAuth, assistant_id: str) -> dict[str, Any]:
    """An assistant the caller may read, by its id or by a graph's name (that graph's default assistant), for the
    routes that accept either as langgraph-api does. NotFound, or a 422 for an id that is neither."""
    try:
        assistant_id = services.runs.assistant_id_of(assistant_id)
    except NotAnAssistant as exc:  # as an HTTPException, like a malformed id: what the callers here catch
        raise HTTPException(422, str(exc)) from None
    return await _readable(services, auth, assistant_id)


async def _assistant_for_introspection(services: Services, auth: RequestAuth, assistant_id: str) -> dict[str, Any]:
    assistant = await readable_by_id_or_graph(services, auth, assistant_id)
    if assistant["graph_id"] not in services.registry:
        raise NotFound(f"graph {assistant['graph_id']!r} is not loaded")
    return assistant


@router.post("")
async def create_assistant(body: schemas.AssistantCreate, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    if body.graph_id not in services.registry:
        raise HTTPException(404, f"graph {body.graph_id!r} not found; known graphs: {', '.join(services.registry.ids)}")
    if body.assistant_id:
        validate_uuid(body.assistant_id, "assistant_id")
    refuse_configurable_and_context(body.config, body.context)
    fields = body.model_dump()
    fields["metadata"] = dict(fields["metadata"] or {})
    # The handler may stamp metadata (an owner, say); what it leaves in `value` is what is stored.
    value = dict(fields)
    auth_filter = await auth.check("assistants", "create", value)
    fields["metadata"] = value.get("metadata")
    row = await services.repos.assistants.create(**fields, auth_filter=auth_filter)
    return JSONResponse(_public(row))


@router.post("/search")
async def search_assistants(body: schemas.AssistantSearch, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    query = body.model_dump(exclude={"select"})
    auth_filter = await auth.check("assistants", "search", search_value(query))
    page = await services.repos.assistants.search(**query, auth_filter=auth_filter)
    return paged(page, [_select(_public(r), body.select) for r in page.items])


def _select(row: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return {k: row[k] for k in fields if k in row} if fields else row


@router.post("/count")
async def count_assistants(body: schemas.AssistantCount, services: ServicesDep, auth: AuthDep) -> int:
    query = body.model_dump()
    auth_filter = await auth.check("assistants", "search", search_value(query))
    return await services.repos.assistants.count(**query, auth_filter=auth_filter)


@router.get("/{assistant_id}")
async def get_assistant(assistant_id: str, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    return JSONResponse(_public(await _readable(services, auth, assistant_id)))


@router.patch("/{assistant_id}")
async def update_assistant(
    assistant_id: str, body: schemas.AssistantPatch, services: ServicesDep, auth: AuthDep
) -> JSONResponse:
    validate_uuid(assistant_id, "assistant_id")
    if body.graph_id is not None and body.graph_id not in services.registry:
        raise HTTPException(404, f"graph {body.graph_id!r} not found")
    refuse_configurable_and_context(body.config, body.context)
    changes = body.model_dump(exclude_unset=True)
    value = {"assistant_id": assistant_id, **changes, "metadata": dict(changes.get("metadata") or {})}
    auth_filter = await auth.check("assistants", "update", value)
    if value.get("metadata") or "metadata" in changes:
        changes["metadata"] = value.get("metadata")
    row = await services.repos.assistants.update(assistant_id, changes, auth_filter=auth_filter)
    return JSONResponse(_public(row))


@router.delete("/{assistant_id}", status_code=204)
async def delete_assistant(
    assistant_id: str, services: ServicesDep, auth: AuthDep, delete_threads: bool = False
) -> Response:
    validate_uuid(assistant_id, "assistant_id")
    auth_filter = await auth.check("assistants", "delete", {"assistant_id": assistant_id})
    # Before the assistant goes: a caller who may not delete the threads must not get halfway.
    thread_filter = await auth.check("threads", "delete", {"thread_id": None}) if delete_threads else None
    await services.repos.assistants.get(assistant_id, auth_filter=auth_filter)  # 404 before anything stops
    # Its runs stop first, as langgraph-api does: a queued one could not start without it, and one running on
    # would finish for an assistant that no longer exists.
    await services.runs.cancel_assistant(assistant_id)
    await services.repos.assistants.delete(assistant_id, auth_filter=auth_filter)
    # And those made meanwhile (a run made while the first ones stopped would run for a deleted assistant).
    await services.runs.cancel_assistant(assistant_id)
    if delete_threads:
        page = await services.repos.threads.search(
            metadata={"assistant_id": assistant_id}, limit=100_000, auth_filter=thread_filter
        )
        for thread in page.items:
            await services.runs.cancel_thread(thread["thread_id"])
            await services.runs.delete_thread_data(thread["thread_id"])
    return Response(status_code=204)


@router.post("/{assistant_id}/versions")
async def assistant_versions(
    assistant_id: str, body: schemas.AssistantVersions, services: ServicesDep, auth: AuthDep
) -> JSONResponse:
    validate_uuid(assistant_id, "assistant_id")
    auth_filter = await auth.check("assistants", "read", {"assistant_id": assistant_id})
    return JSONResponse(
        await services.repos.assistants.versions(assistant_id, **body.model_dump(), auth_filter=auth_filter)
    )


@router.post("/{assistant_id}/latest")
async def set_latest_version(
    assistant_id: str, body: schemas.SetLatest, services: ServicesDep, auth: AuthDep
) -> JSONResponse:
    validate_uuid(assistant_id, "assistant_id")
    value = {"assistant_id": assistant_id, "version": body.version}
    auth_filter = await auth.check("assistants", "update", value)
    return JSONResponse(
        _public(await services.repos.assistants.set_latest(assistant_id, body.version, auth_filter=auth_filter))
    )


@router.get("/{assistant_id}/graph")
async def assistant_graph(
    assistant_id: str,
    services: ServicesDep,
    auth: AuthDep,
    xray: str = Query("false", description="true/false or a depth"),
) -> JSONResponse:
    assistant = await _assistant_for_introspection(services, auth, assistant_id)
    return JSONResponse(await services.registry.drawable(assistant["graph_id"], assistant["config"], _xray(xray)))


def _xray(value: str) -> bool | int:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    try:
        return int(value)
    except ValueError:
        raise HTTPException(422, f"xray must be a boolean or an integer depth, got {value!r}") from None


@router.get("/{assistant_id}/schemas")
async def assistant_schemas(assistant_id: str, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    assistant = await _assistant_for_introspection(services, auth, assistant_id)
    return JSONResponse(await services.registry.schemas(assistant["graph_id"], assistant["config"]))


@router.get("/{assistant_id}/subgraphs")
async def assistant_subgraphs(
    assistant_id: str, services: ServicesDep, auth: AuthDep, recurse: bool = False, namespace: str | None = None
) -> JSONResponse:
    assistant = await _assistant_for_introspection(services, auth, assistant_id)
    return JSONResponse(await services.registry.subgraphs(assistant["graph_id"], assistant["config"], namespace, recurse))


@router.get("/{assistant_id}/subgraphs/{namespace}")
async def assistant_subgraphs_in(
    assistant_id: str, namespace: str, services: ServicesDep, auth: AuthDep, recurse: bool = False
) -> JSONResponse:
    assistant = await _assistant_for_introspection(services, auth, assistant_id)
    return JSONResponse(await services.registry.subgraphs(assistant["graph_id"], assistant["config"], namespace, recurse))
