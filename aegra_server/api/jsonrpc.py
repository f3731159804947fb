"""JSON-RPC 2.0's envelope and standard error codes, for the protocols served over it (/mcp, /a2a)."""

from __future__ import annotations

from typing import Any

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602


def error(code: int, message: str) -> dict[str, Any]:
    """A request's failure, to go in its `response`."""
    return {"error": {"code": code, "message": message}}


def response(rpc_id: Any, outcome: dict[str, Any]) -> dict[str, Any]:
    """The answer to request `rpc_id`: `outcome` is `{"result": ...}` or an `error(...)`."""
    return {"jsonrpc": "2.0", "id": rpc_id, **outcome}
