"""/assistants: CRUD, versions, search/count and graph introspection."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response

from aegra_server.api import schemas
from aegra_server.api.deps import ServicesDep
from aegra_server.api.http import JSONResponse, paged, validate_uuid
from aegra_server.graphs import default_assistant_id
from aegra_server.services import Services
from aegra_server.storage.common import NotFound

router = APIRouter(prefix="/assistants", tags=["assistants"])

_FIELDS = ("assistant_id", "graph_id", "config", "context", "created_at", "updated_at", "metadata", "version", "name", "description")


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in _FIELDS}


async def _assistant_for_introspection(services: Services, assistant_id: str) -> dict[str, Any]:
    """These routes accept a graph name in place of the id, as langgraph-api does."""
    if assistant_id in services.registry:
        assistant_id = default_assistant_id(assistant_id)
    validate_uuid(assistant_id, "assistant_id")
    assistant = await services.repos.assistants.get(assistant_id)
    if assistant["graph_id"] not in services.registry:
        raise NotFound(f"graph {assistant['graph_id']!r} is not loaded")
    return assistant


@router.post("")
async def create_assistant(body: schemas.AssistantCreate, services: ServicesDep) -> JSONResponse:
    if body.graph_id not in services.registry:
        raise HTTPException(404, f"graph {body.graph_id!r} not found; known graphs: {', '.join(services.registry.ids)}")
    if body.assistant_id:
        validate_uuid(body.assistant_id, "assistant_id")
    row = await services.repos.assistants.create(**body.model_dump())
    return JSONResponse(_public(row))


@router.post("/search")
async def search_assistants(body: schemas.AssistantSearch, services: ServicesDep) -> JSONResponse:
    page = await services.repos.assistants.search(**body.model_dump(exclude={"select"}))
    return paged(page, [_select(_public(r), body.select) for r in page.items])


def _select(row: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return {k: row[k] for k in fields if k in row} if fields else row


@router.post("/count")
async def count_assistants(body: schemas.AssistantCount, services: ServicesDep) -> int:
    return await services.repos.assistants.count(**body.model_dump())


@router.get("/{assistant_id}")
async def get_assistant(assistant_id: str, services: ServicesDep) -> JSONResponse:
    return JSONResponse(_public(await services.repos.assistants.get(validate_uuid(assistant_id, "assistant_id"))))


@router.patch("/{assistant_id}")
async def update_assistant(assistant_id: str, body: schemas.AssistantPatch, services: ServicesDep) -> JSONResponse:
    validate_uuid(assistant_id, "assistant_id")
    if body.graph_id is not None and body.graph_id not in services.registry:
        raise HTTPException(404, f"graph {body.graph_id!r} not found")
    row = await services.repos.assistants.update(assistant_id, body.model_dump(exclude_unset=True))
    return JSONResponse(_public(row))


@router.delete("/{assistant_id}", status_code=204)
async def delete_assistant(assistant_id: str, services: ServicesDep, delete_threads: bool = False) -> Response:
    validate_uuid(assistant_id, "assistant_id")
    await services.repos.assistants.delete(assistant_id)
    if delete_threads:
        page = await services.repos.threads.search(metadata={"assistant_id": assistant_id}, limit=100_000)
        for thread in page.items:
            await services.runs.delete_thread_data(thread["thread_id"])
    return Response(status_code=204)


@router.post("/{assistant_id}/versions")
async def assistant_versions(assistant_id: str, body: schemas.AssistantVersions, services: ServicesDep) -> JSONResponse:
    validate_uuid(assistant_id, "assistant_id")
    return JSONResponse(await services.repos.assistants.versions(assistant_id, **body.model_dump()))


@router.post("/{assistant_id}/latest")
async def set_latest_version(assistant_id: str, body: schemas.SetLatest, services: ServicesDep) -> JSONResponse:
    validate_uuid(assistant_id, "assistant_id")
    return JSONResponse(_public(await services.repos.assistants.set_latest(assistant_id, body.version)))


@router.get("/{assistant_id}/graph")
async def assistant_graph(
    assistant_id: str, services: ServicesDep, xray: str = Query("false", description="true/false or a depth")
) -> JSONResponse:
    assistant = await _assistant_for_introspection(services, assistant_id)
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
async def assistant_schemas(assistant_id: str, services: ServicesDep) -> JSONResponse:
    assistant = await _assistant_for_introspection(services, assistant_id)
    return JSONResponse(await services.registry.schemas(assistant["graph_id"], assistant["config"]))


@router.get("/{assistant_id}/subgraphs")
async def assistant_subgraphs(assistant_id: str, services: ServicesDep, recurse: bool = False, namespace: str | None = None) -> JSONResponse:
    assistant = await _assistant_for_introspection(services, assistant_id)
    return JSONResponse(await services.registry.subgraphs(assistant["graph_id"], assistant["config"], namespace, recurse))


@router.get("/{assistant_id}/subgraphs/{namespace}")
async def assistant_subgraphs_in(assistant_id: str, namespace: str, services: ServicesDep, recurse: bool = False) -> JSONResponse:
    assistant = await _assistant_for_introspection(services, assistant_id)
    return JSONResponse(await services.registry.subgraphs(assistant["graph_id"], assistant["config"], namespace, recurse))
