"""/store: LangGraph's long-term memory store over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response

from aegra_server.api import schemas
from aegra_server.api.deps import ServicesDep
from aegra_server.api.http import JSONResponse
from aegra_server.auth import AuthDep, RequestAuth
from aegra_server.storage.database import as_utc
from aegra_server.store_index import InvalidFilter, check_filter

router = APIRouter(prefix="/store", tags=["store"])


def _namespace(labels: list[str] | None, field: str = "namespace", required: bool = False) -> tuple[str, ...]:
    labels = labels or []
    if required and not labels:  # a 400 as langgraph-api answers it; a bad label is a 422 there too
        raise HTTPException(400, f"{field} must not be empty")
    for label in labels:
        if not label or "." in label:
            raise HTTPException(422, f"{field}: labels must be non-empty and may not contain '.', got {label!r}")
    return tuple(labels)


async def _authorized(auth: RequestAuth, action: str, value: dict[str, Any], field: str = "namespace") -> tuple[str, ...]:
    """Run the store handler for `action`; it may rewrite `value["namespace"]` (to the user's own, say), and the
    namespace it leaves is the one used. A filter it returns has nothing to apply to and is ignored."""
    await auth.check("store", action, value)
    namespace = value.get("namespace")
    if namespace is None:
        return ()
    if isinstance(namespace, str) or not all(isinstance(label, str) for label in namespace):
        raise TypeError(f"the store.{action} auth handler left a namespace that is not a list of strings")
    return _namespace(list(namespace), field)


def _item(item: Any, searched: bool = False) -> dict[str, Any] | None:
    if item is None:
        return None
    data = {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        # SQLite's store keeps CURRENT_TIMESTAMP: UTC, read back without an offset.
        "created_at": as_utc(item.created_at),
        "updated_at": as_utc(item.updated_at),
    }
    if searched:  # a search result always says its score, null without a semantic query
        data["score"] = getattr(item, "score", None)
    return data


@router.put("/items", status_code=204)
async def put_item(body: schemas.StorePut, services: ServicesDep, auth: AuthDep) -> Response:
    extra = {} if body.ttl is None else {"ttl": body.ttl}
    namespace = _namespace(body.namespace, required=True)
    if auth.enabled:
        value = {"namespace": namespace, "key": body.key, "value": body.value, "index": body.index}
        namespace = await _authorized(auth, "put", value)
    await services.store.aput(namespace, body.key, body.value, index=body.index, **extra)
    return Response(status_code=204)


@router.get("/items")
async def get_item(
    services: ServicesDep, auth: AuthDep, key: str, namespace: str = Query(""), refresh_ttl: bool | None = None
) -> JSONResponse:
    labels = _namespace(namespace.split("."))  # none, "" or "a.": an empty label, refused (nothing is kept at the root)
    if auth.enabled:
        labels = await _authorized(auth, "get", {"namespace": labels, "key": key})
    item = await services.store.aget(labels, key, refresh_ttl=refresh_ttl)
    return JSONResponse(_item(item))


@router.delete("/items", status_code=204)
async def delete_item(body: schemas.StoreDelete, services: ServicesDep, auth: AuthDep) -> Response:
    namespace = _namespace(body.namespace)
    if auth.enabled:
        namespace = await _authorized(auth, "delete", {"namespace": namespace, "key": body.key})
    await services.store.adelete(namespace, body.key)
    return Response(status_code=204)


@router.post("/items/search")
async def search_items(body: schemas.StoreSearch, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    try:
        check_filter(body.filter)  # before the authorization handler sees it, as before
    except InvalidFilter as exc:
        raise HTTPException(422, str(exc)) from None
    prefix = _namespace(body.namespace_prefix, "namespace_prefix")
    if auth.enabled:
        value = {
            "namespace": prefix,
            "filter": body.filter,
            "limit": body.limit,
            "offset": body.offset,
            "query": body.query,
        }
        prefix = await _authorized(auth, "search", value, "namespace_prefix")
    try:
        items = await services.store.asearch(
            prefix,
            query=body.query,
            filter=body.filter,
            limit=body.limit,
            offset=body.offset,
            refresh_ttl=body.refresh_ttl,
        )
    except ValueError as exc:  # e.g. a filter key the store refuses
        raise HTTPException(422, f"invalid search: {exc}") from None
    return JSONResponse({"items": [_item(i, searched=True) for i in items]})


@router.post("/namespaces")
async def list_namespaces(body: schemas.StoreNamespaces, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    prefix = _namespace(body.prefix, "prefix")
    if auth.enabled:
        value = {
            "namespace": prefix,
            "suffix": _namespace(body.suffix, "suffix") or None,
            "max_depth": body.max_depth,
            "limit": body.limit,
            "offset": body.offset,
        }
        prefix = await _authorized(auth, "list_namespaces", value, "prefix")
    namespaces = await services.store.alist_namespaces(
        prefix=prefix or None,
        suffix=_namespace(body.suffix, "suffix") or None,
        max_depth=body.max_depth,
        limit=body.limit,
        offset=body.offset,
    )
    return JSONResponse({"namespaces": [list(n) for n in namespaces]})
