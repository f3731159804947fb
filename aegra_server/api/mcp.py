"""/mcp: the server's assistants as MCP tools, over MCP's Streamable HTTP transport, as langgraph-api serves them.

Stateless: no sessions (DELETE is a 404), no stream the server opens (GET is a 405); each POSTed JSON-RPC request
gets one JSON answer, and notifications and responses a 202.

- `initialize`: the client's protocol version when it is one of ours, else the newest; the only capability is tools.
- `tools/list`: one tool per assistant, a page of 100 at a time (`cursor` is the offset), named after the assistant
  with only the characters MCP allows in a tool name (the first of two that come out the same wins). The input
  schema is the graph's, except that a list of LangChain messages becomes one string, the user's message: a model
  fills that in where it would fail at the message schemas (LangGraph's message reducer takes a string).
- `tools/call`: a stateless run of that assistant with the arguments as its input (and `context`), waited for; the
  output as JSON text, or `isError` with the run's error.
Authorization is the HTTP API's: searching assistants, reading their schemas, creating runs.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from aegra_server import serde
from aegra_server.api import jsonrpc
from aegra_server.api.deps import ServicesDep
from aegra_server.api.http import JSONResponse
from aegra_server.api.meta import installed_version
from aegra_server.api.runs import create_authorized, wait_output
from aegra_server.api.schemas import MAX_OFFSET, RunCreate
from aegra_server.auth import AuthDep, RequestAuth, search_value
from aegra_server.services import Services
from aegra_server.storage.common import NotFound

router = APIRouter(tags=["mcp"])
log = logging.getLogger("aegra.mcp")

PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")  # oldest first
PAGE_SIZE = 100
MAX_ASSISTANTS = 1000  # searched for a tool by name, as langgraph-api does
_NOT_IN_TOOL_NAMES = re.compile(r"[^A-Za-z0-9_.-]")
_MESSAGE_TYPES = {f"{kind}{suffix}" for kind in ("AI", "Human", "Chat", "System", "Function", "Tool")
                  for suffix in ("Message", "MessageChunk")}
_MESSAGE_PARTS = {"ToolCall", "ToolCallChunk", "InvalidToolCall", "UsageMetadata", "InputTokenDetails",
                  "OutputTokenDetails"}


def tool_name(assistant_name: str) -> str:
    """MCP tool names are 1-128 of letters, digits, `_`, `-` and `.`: blanks become `_`, the rest goes."""
    return _NOT_IN_TOOL_NAMES.sub("", re.sub(r"\s+", "_", assistant_name.strip()))[:128]


def _simplified(schema: dict[str, Any]) -> dict[str, Any]:
    """The input schema with each list of LangChain messages as one string property (see the module's doc)."""
    definitions = schema.get("$defs") or {}
    if not set(definitions) & _MESSAGE_TYPES:
        return schema
    kept = {name: value for name, value in definitions.items() if name not in _MESSAGE_TYPES | _MESSAGE_PARTS}
    properties = {}
    for key, prop in (schema.get("properties") or {}).items():
        items = prop.get("items") or {}
        refs = {choice.get("$ref", "").rpartition("/")[2] for choice in items.get("anyOf") or items.get("oneOf") or []}
        if prop.get("type") == "array" and refs & _MESSAGE_TYPES:
            prop = {"type": "string", "title": prop.get("title", key),
                    "description": "The user message to send to the agent."}
        properties[key] = prop
    simplified = {**schema, "properties": properties, "$defs": kept}
    if not kept:
        del simplified["$defs"]
    return simplified


# No GET route: without a stream the server opens, GET is the router's 405, which names the allowed methods.
@router.delete("/mcp")
@router.delete("/mcp/", include_in_schema=False)  # langgraph-api serves both
async def mcp_end_session() -> Response:
    return Response(status_code=404)  # there are no sessions to end


@router.post("/mcp")
@router.post("/mcp/", include_in_schema=False)
async def mcp_message(request: Request, services: ServicesDep, auth: AuthDep) -> Response:
    try:
        message = serde.loads(await request.body())
    except ValueError:
        return _refused("the body is not JSON")
    accept = request.headers.get("accept", "")
    if "application/json" not in accept and "text/event-stream" not in accept:
        return _refused("the Accept header must include application/json or text/event-stream")
    if not isinstance(message, dict):
        return _refused("the body must be one JSON-RPC message (an object); batches are not supported")
    if message.get("jsonrpc") != "2.0":
        return _refused('jsonrpc must be "2.0"')
    method, message_id = message.get("method"), message.get("id")
    if method and message_id is not None:  # 0 is a valid id
        params = message.get("params") or {}
        answer = await _answer(services, auth, method, params if isinstance(params, dict) else {})
        return JSONResponse(jsonrpc.response(message_id, answer))
    if method or message_id is not None:
        return Response(status_code=202)  # a notification, or a response to a request we never send
    return _refused("the message is neither a request, a notification nor a response")


def _refused(why: str) -> JSONResponse:
    return JSONResponse({"error": why}, status_code=400)


async def _answer(services: Services, auth: RequestAuth, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """`{"result": ...}` or `{"error": ...}` for one request."""
    if method == "initialize":
        requested = params.get("protocolVersion")
        return {"result": {
            "protocolVersion": requested if requested in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[-1],
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "Aegra", "version": installed_version("aegra")},
        }}
    if method == "ping":
        return {"result": {}}
    if method == "tools/list":
        return {"result": await _tools(services, auth, params.get("cursor"))}
    if method == "tools/call":
        return await _call(services, auth, params)
    return jsonrpc.error(jsonrpc.METHOD_NOT_FOUND, f"Method not found: {method}")


async def _assistants(services: Services, auth: RequestAuth, *, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    query = {"limit": limit, "offset": offset}
    auth_filter = await auth.check("assistants", "search", search_value(query))
    return (await services.repos.assistants.search(**query, auth_filter=auth_filter)).items


async def _tools(services: Services, auth: RequestAuth, cursor: Any) -> dict[str, Any]:
    try:
        offset = max(int(cursor or 0), 0)
    except (TypeError, ValueError):  # not a number: the first page, as langgraph-api
        offset = 0
    if offset > MAX_OFFSET:  # past every assistant, like any cursor beyond the end (and too large for SQL)
        return {"tools": []}
    assistants = await _assistants(services, auth, limit=PAGE_SIZE, offset=offset)
    named: dict[str, dict[str, Any]] = {}
    for assistant in assistants:
        name = tool_name(assistant["name"] or "")
        if name and name not in named:
            named[name] = assistant
        elif name:  # common ("Untitled"): debug, not a warning on every listing
            log.debug("assistant %s is not an MCP tool: another is also named %r", assistant["assistant_id"], name)
    tools = await asyncio.gather(*(_tool(services, name, assistant) for name, assistant in named.items()))
    result: dict[str, Any] = {"tools": [tool for tool in tools if tool is not None]}
    if len(assistants) == PAGE_SIZE:
        result["nextCursor"] = str(offset + PAGE_SIZE)
    return result


async def _tool(services: Services, name: str, assistant: dict[str, Any]) -> dict[str, Any] | None:
    """The tool for an assistant, or None when its graph is not loaded (any more) or has no input schema."""
    if assistant["graph_id"] not in services.registry:
        return None
    try:
        schemas = await services.registry.schemas(assistant["graph_id"], assistant["config"])
    except Exception:  # a graph whose schema cannot be made must not hide the other tools
        log.warning("assistant %s is not an MCP tool: its graph's schemas failed", assistant["assistant_id"],
                    exc_info=True)
        return None
    input_schema = schemas.get("input_schema")
    if input_schema is None:
        return None
    return {
        "name": name,
        "title": assistant["name"],
        "description": assistant.get("description") or f"Tool based on the {assistant['name']} assistant",
        "inputSchema": {"type": "object", **_simplified(input_schema)},
        "annotations": {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False,
                        "openWorldHint": True},
    }


async def _call(services: Services, auth: RequestAuth, params: dict[str, Any]) -> dict[str, Any]:
    name = params.get("name")
    matches = [assistant for assistant in await _assistants(services, auth, limit=MAX_ASSISTANTS)
               if isinstance(name, str) and name and tool_name(assistant["name"] or "") == name]
    if len(matches) != 1:
        why = f"Unknown tool: {name}" if not matches else f"Several assistants are named like the tool {name}"
        return jsonrpc.error(jsonrpc.INVALID_PARAMS, why)
    arguments = params.get("arguments")
    try:
        body = RunCreate(assistant_id=matches[0]["assistant_id"], input=arguments if arguments is not None else {},
                         context=params.get("context"))
    except ValidationError:
        return jsonrpc.error(jsonrpc.INVALID_PARAMS, "context must be an object")
    try:
        run = await create_authorized(services, auth, None, body.payload(), awaited=True)
    except NotFound as error:  # its graph is no longer loaded
        return jsonrpc.error(jsonrpc.INVALID_PARAMS, str(error))
    output = await wait_output(services, run["run_id"], run["thread_id"])
    if isinstance(output, dict) and "__error__" in output:
        error = output["__error__"]
        return {"result": {"isError": True, "content": [
            {"type": "text", "text": f"{error.get('error')}: {error.get('message')}"}
        ]}}
    return {"result": {"content": [{"type": "text", "text": serde.dumps_str(output)}]}}
