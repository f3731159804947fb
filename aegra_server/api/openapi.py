"""The OpenAPI document, made to say what the server really answers.

FastAPI derives the request side from the routers; this adds the rest, in one place: every status an operation
can answer with (the error statuses all share the `{"detail": ...}` body), the resources the main operations
return, UUID path parameters, and `text/event-stream` for the streaming operations. The property-based test
(tests/server/test_hostile_input.py) holds the server to this document.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

# Shared by every error: a message, or FastAPI's list of validation errors.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "detail": {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"loc": {"type": "array"}, "msg": {"type": "string"}, "type": {"type": "string"}},
                    },
                },
            ]
        }
    },
    "required": ["detail"],
    "title": "Error",
}
ERRORS = {
    # Also, as langgraph-api: a store item with an empty namespace, a cron update naming no field.
    "400": "The body is not JSON, or gives the operation nothing to act on",
    "401": "Not authenticated (with `auth.path` set)",
    "403": "Refused by an authorization handler",
    "404": "Not found, or hidden by the caller's authorization",
    "409": "Conflicts with an existing resource or a busy thread",
    "413": "The request body is too large",
    "422": "The request is invalid; `detail` says which field and why",
}
UUID_PARAMETERS = {"thread_id", "run_id", "cron_id"}
SSE_PATHS = {
    "/threads/{thread_id}/runs/stream",
    "/runs/stream",
    "/threads/{thread_id}/runs/{run_id}/stream",
    "/threads/{thread_id}/stream",
    "/threads/{thread_id}/stream/events",
}
_OPEN = ConfigDict(extra="allow")
# One server-sent event: `event:` names the stream mode (or metadata, error, a protocol method), `data:` is JSON
# text, `id:` its position when the stream is resumable.
_SSE_EVENT = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}},
}


class Thread(BaseModel):
    model_config = _OPEN
    thread_id: str
    created_at: datetime
    updated_at: datetime
    state_updated_at: datetime | None = None
    metadata: dict[str, Any]
    config: dict[str, Any]
    status: Literal["idle", "busy", "interrupted", "error"]
    values: Any = None
    interrupts: dict[str, Any]


class Assistant(BaseModel):
    model_config = _OPEN
    assistant_id: str
    graph_id: str
    config: dict[str, Any]
    context: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]
    version: int
    name: str
    description: str | None = None


class Run(BaseModel):
    model_config = _OPEN
    run_id: str
    thread_id: str
    assistant_id: str
    created_at: datetime
    updated_at: datetime
    status: Literal["pending", "running", "success", "error", "timeout", "interrupted"]
    metadata: dict[str, Any]
    kwargs: dict[str, Any]
    multitask_strategy: str | None = None


class Cron(BaseModel):
    model_config = _OPEN
    cron_id: str
    assistant_id: str
    thread_id: str | None = None
    on_run_completed: str | None = None
    end_time: datetime | None = None
    schedule: str
    timezone: str | None = None
    created_at: datetime
    updated_at: datetime
    payload: dict[str, Any]
    user_id: str | None = None
    next_run_date: datetime | None = None
    metadata: dict[str, Any]
    enabled: bool


class StoreItem(BaseModel):
    model_config = _OPEN
    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    score: float | None = None


class StoreItems(BaseModel):
    items: list[StoreItem]


class Namespaces(BaseModel):
    namespaces: list[list[str]]


class Pruned(BaseModel):
    pruned_count: int = Field(ge=0)


class StoredPart(BaseModel):
    count: int = Field(ge=0)
    bytes: int = Field(ge=0)


class StoredChannel(BaseModel):
    versions: int = Field(ge=0)
    bytes: int = Field(ge=0)


class StoredChannelValues(StoredPart):
    by_channel: dict[str, StoredChannel]


class ThreadStorage(BaseModel):
    thread_id: str
    total_bytes: int = Field(ge=0)
    checkpoints: StoredPart
    channel_values: StoredChannelValues
    pending_writes: StoredPart


class Ok(BaseModel):
    ok: bool
    services: dict[str, Literal["healthy", "unhealthy", "skipped"]]  # each storage part: checked with check_db=1


def _partial(model: type[BaseModel]) -> dict[str, Any]:
    """Search results may be cut to `select`ed fields: the same properties, none required."""
    return {"type": "object", "properties": _properties(model)}


def _properties(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}").get("properties", {})


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _array(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


_OBJECT = {"type": "object"}
_INTEGER = {"type": "integer", "minimum": 0}
# The thread protocol answers a malformed command with its own error envelope, not `{"detail": ...}`.
_PROTOCOL_ERROR = {
    "type": "object",
    "properties": {"type": {"const": "error"}, "id": {}, "error": {"type": "string"}, "message": {"type": "string"}},
    "required": ["type", "error", "message"],
}
# /mcp and /a2a refuse a malformed message as langgraph-api does: `{"error": ...}`; JSON-RPC errors come in a 200.
_RPC_REFUSAL = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}

@dataclass(frozen=True)
class _Media:
    """An answer that is not JSON: its media types and their schema."""

    types: tuple[str, ...]
    schema: dict[str, Any]


_TEXT = {"type": "string"}

# (method, path) -> {status: schema} for the success answers; unlisted ones keep FastAPI's (any JSON).
RESPONSES: dict[tuple[str, str], dict[str, dict[str, Any] | _Media | None]] = {
    ("get", "/ok"): {"200": _ref(Ok), "500": _ref(Ok), "422": {"$ref": "#/components/schemas/Error"}},
    ("get", "/health"): {"200": _OBJECT, "503": _OBJECT},
    ("get", "/ready"): {"200": _OBJECT, "503": _OBJECT},
    ("post", "/assistants"): {"200": _ref(Assistant)},
    ("post", "/assistants/search"): {"200": _array(_partial(Assistant))},
    ("post", "/assistants/count"): {"200": _INTEGER},
    ("get", "/assistants/{assistant_id}"): {"200": _ref(Assistant)},
    ("patch", "/assistants/{assistant_id}"): {"200": _ref(Assistant)},
    ("post", "/assistants/{assistant_id}/latest"): {"200": _ref(Assistant)},
    ("post", "/assistants/{assistant_id}/versions"): {"200": _array(_OBJECT)},
    ("post", "/threads"): {"200": _ref(Thread)},
    ("post", "/threads/search"): {"200": _array(_partial(Thread))},
    ("post", "/threads/count"): {"200": _INTEGER},
    ("post", "/threads/prune"): {"200": _ref(Pruned)},
    ("get", "/threads/{thread_id}"): {"200": _ref(Thread)},
    ("patch", "/threads/{thread_id}"): {"200": _ref(Thread), "204": None},
    ("post", "/threads/{thread_id}/copy"): {"200": _ref(Thread)},
    ("get", "/threads/{thread_id}/state"): {"200": _OBJECT},
    ("post", "/threads/{thread_id}/state/checkpoint"): {"200": _OBJECT},
    ("get", "/threads/{thread_id}/state/{checkpoint_id}"): {"200": _OBJECT},
    ("post", "/threads/{thread_id}/state"): {"200": _OBJECT},
    ("get", "/threads/{thread_id}/history"): {"200": _array(_OBJECT)},
    ("get", "/threads/{thread_id}/storage"): {"200": _ref(ThreadStorage)},
    ("post", "/threads/{thread_id}/history"): {"200": _array(_OBJECT)},
    ("post", "/threads/{thread_id}/commands"): {"200": _OBJECT, "400": _PROTOCOL_ERROR},
    ("post", "/threads/{thread_id}/runs"): {"200": _ref(Run)},
    ("post", "/runs"): {"200": _ref(Run)},
    ("post", "/runs/batch"): {"200": _array(_ref(Run))},
    ("get", "/threads/{thread_id}/runs"): {"200": _array(_partial(Run))},
    ("get", "/threads/{thread_id}/runs/{run_id}"): {"200": _ref(Run)},
    ("post", "/threads/{thread_id}/runs/{run_id}/cancel"): {"200": {}, "202": None, "204": None},
    ("post", "/runs/crons"): {"200": _ref(Cron)},
    ("post", "/threads/{thread_id}/runs/crons"): {"200": _ref(Cron)},
    ("post", "/runs/crons/search"): {"200": _array(_partial(Cron))},
    ("post", "/runs/crons/count"): {"200": _INTEGER},
    ("get", "/runs/crons/{cron_id}"): {"200": _ref(Cron)},
    ("patch", "/runs/crons/{cron_id}"): {"200": _ref(Cron)},
    ("get", "/store/items"): {"200": {"anyOf": [_ref(StoreItem), {"type": "null"}]}},
    ("post", "/store/items/search"): {"200": _ref(StoreItems)},
    ("post", "/store/namespaces"): {"200": _ref(Namespaces)},
    ("post", "/mcp"): {"200": _OBJECT, "202": None, "400": _RPC_REFUSAL},
    ("delete", "/mcp"): {"404": None},  # no sessions to end
    ("post", "/a2a/{assistant_id}"): {"200": _OBJECT, "202": None, "400": _RPC_REFUSAL},
    ("get", "/a2a/{assistant_id}"): {"200": _OBJECT},
    ("get", "/a2a/{assistant_id}/.well-known/agent-card.json"): {"200": _OBJECT},
    ("get", "/a2a/{assistant_id}/.well-known/agent.json"): {"200": _OBJECT},
    ("get", "/.well-known/agent-card.json"): {"200": _OBJECT},
    # Generative UI: the HTML that loads a graph's bundle, and its files.
    ("post", "/ui/{graph_id}"): {"200": _Media(("text/html",), _TEXT)},
    ("get", "/ui/{graph_id}/{file_name}"): {"200": _Media(("text/javascript", "text/css"), _TEXT)},
}
MODELS = (Thread, Assistant, Run, Cron, StoreItem, StoreItems, Namespaces, Pruned, Ok, ThreadStorage)


def _components(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in MODELS:
        definition = TypeAdapter(model).json_schema(ref_template="#/components/schemas/{model}")
        components.update(definition.pop("$defs", {}))
        components[model.__name__] = definition
    components["Error"] = ERROR_SCHEMA
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    return components


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def document(schema: dict[str, Any], public_paths: set[str]) -> dict[str, Any]:
    """Complete FastAPI's document (in place) and return it."""
    _components(schema)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") in UUID_PARAMETERS:
                    parameter["schema"] = {**parameter.get("schema", {}), "type": "string", "format": "uuid"}
            if path in public_paths:
                responses.pop("422", None)
            else:
                for status, description in ERRORS.items():
                    responses[status] = {"description": description, "content": _json({"$ref": "#/components/schemas/Error"})}
            for status, answer in RESPONSES.get((method, path), {}).items():
                entry = responses.setdefault(status, {"description": "OK"})
                if answer is None:
                    entry.pop("content", None)
                elif isinstance(answer, _Media):
                    entry["content"] = {media: {"schema": answer.schema} for media in answer.types}
                else:
                    entry["content"] = _json(answer)
            if path in SSE_PATHS and "200" in responses:
                responses["200"]["content"] = {"text/event-stream": {"schema": _SSE_EVENT}}
                responses["200"]["description"] = "Server-sent events"
    return schema


def install(app: FastAPI, public_paths: set[str]) -> None:
    """Serve the completed document at the app's openapi_url (built once, on first request)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(build(), public_paths)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
