"""A2A's two JSON-RPC wire formats, and reading what clients send in either.

Objects are built in A2A 0.3's JSON (`kind`-tagged, states like "completed", roles "user"/"agent", file parts as
`{"kind": "file", "file": {...}}`), which is what clients calling the 0.3 method names (`message/send`, ...) read.
Clients calling the 1.0 names (`SendMessage`, ...) read 1.0's ProtoJSON, made from those by `to_v1`: no `kind`,
`TASK_STATE_*` and `ROLE_*` enums, parts as `{"text"}`, `{"data"}`, `{"raw" | "url", "mediaType", "filename"}`,
streamed events wrapped by type (`{"statusUpdate": ...}`) and without 0.3's `final`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# 0.3's task states, and their 1.0 enum names.
STATES = ("submitted", "working", "input-required", "completed", "canceled", "failed", "rejected", "auth-required")
V1_STATE = {state: "TASK_STATE_" + state.upper().replace("-", "_") for state in STATES}
TERMINAL = {"completed", "canceled", "failed", "rejected"}
V1_ROLE = {"user": "ROLE_USER", "agent": "ROLE_AGENT"}
USER_ROLES = {"user", "ROLE_USER"}


def now() -> str:
    return datetime.now(UTC).isoformat()


# ---- what clients send ---------------------------------------------------------------------------------------


@dataclass
class Part:
    """One part of a client's message, whichever format it came in."""

    text: str | None = None
    data: Any = None
    is_data: bool = False
    file_bytes: str | None = None  # base64
    file_uri: str | None = None
    media_type: str | None = None
    filename: str | None = None

    @property
    def is_file(self) -> bool:
        return self.file_bytes is not None or self.file_uri is not None


class PartError(ValueError):
    """A part the server cannot read (A2A's ContentTypeNotSupported)."""


def read_part(part: Any) -> Part:
    if not isinstance(part, dict):
        raise PartError("Each message part must be an object")
    kinds = [key for key in ("text", "data", "file", "raw", "url") if key in part]
    if len(kinds) != 1:
        raise PartError("Each message part must have exactly one of 'text', 'data', 'file', 'raw' or 'url'")
    kind = kinds[0]
    if kind == "text":
        if not isinstance(part["text"], str):
            raise PartError("A text part's 'text' must be a string")
        return Part(text=part["text"])
    if kind == "data":
        return Part(data=part["data"], is_data=True)
    if kind == "file":  # 0.3: {"file": {"bytes" | "uri", "mimeType", "name"}}
        file = part["file"]
        if not isinstance(file, dict) or ("bytes" in file) == ("uri" in file):
            raise PartError("A file part's 'file' must have one of 'bytes' or 'uri'")
        _check_file_fields(file, "bytes" if "bytes" in file else "uri", ("mimeType", "name"), "file.")
        return Part(file_bytes=file.get("bytes"), file_uri=file.get("uri"), media_type=file.get("mimeType"),
                    filename=file.get("name"))
    # 1.0: {"raw": base64} or {"url": ...}, with "mediaType" and "filename" beside it
    _check_file_fields(part, kind, ("mediaType", "filename"))
    return Part(file_bytes=part.get("raw"), file_uri=part.get("url"), media_type=part.get("mediaType"),
                filename=part.get("filename"))


def _check_file_fields(fields: dict[str, Any], content: str, optional: tuple[str, ...], prefix: str = "") -> None:
    """A file's content (base64 or a URI) is a string, and so are its media type and name when given: they reach
    the graph as they are, and the media type picks the kind of its content block."""
    if not isinstance(fields[content], str):
        raise PartError(f"A file part's '{prefix}{content}' must be a string")
    for key in optional:
        if fields.get(key) is not None and not isinstance(fields[key], str):
            raise PartError(f"A file part's '{prefix}{key}' must be a string")


def write_part(part: Part) -> dict[str, Any]:
    """A client's part as the server shows it back (in 0.3's JSON, whichever it came in)."""
    if part.is_data:
        return data_part(part.data)
    if not part.is_file:
        return text_part(part.text or "")
    file: dict[str, Any] = {"bytes": part.file_bytes} if part.file_bytes is not None else {"uri": part.file_uri}
    if part.media_type:
        file["mimeType"] = part.media_type
    if part.filename:
        file["name"] = part.filename
    return {"kind": "file", "file": file}


# ---- what the server answers, in 0.3's JSON ----------------------------------------------------------------------


def text_part(text: str) -> dict[str, Any]:
    return {"kind": "text", "text": text}


def data_part(data: Any) -> dict[str, Any]:
    return {"kind": "data", "data": data}


def message(role: str, parts: list[dict[str, Any]], message_id: str, task_id: str, context_id: str) -> dict[str, Any]:
    return {"kind": "message", "role": role, "parts": parts, "messageId": message_id, "taskId": task_id,
            "contextId": context_id}


def status(state: str, message: dict[str, Any] | None = None, timestamp: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"state": state, "timestamp": timestamp or now()}
    if message is not None:
        body["message"] = message
    return body


def task(task_id: str, context_id: str, task_status: dict[str, Any], *, artifacts: list | None = None,
         history: list | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "task", "id": task_id, "contextId": context_id, "status": task_status}
    if artifacts is not None:
        body["artifacts"] = artifacts
    if history is not None:
        body["history"] = history
    return body


def status_update(task_id: str, context_id: str, task_status: dict[str, Any], final: bool) -> dict[str, Any]:
    return {"kind": "status-update", "taskId": task_id, "contextId": context_id, "status": task_status,
            "final": final}


def artifact_update(task_id: str, context_id: str, artifact: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "artifact-update", "taskId": task_id, "contextId": context_id, "artifact": artifact,
            "append": False, "lastChunk": True}


# ---- 1.0's ProtoJSON -------------------------------------------------------------------------------------------


def to_v1(obj: dict[str, Any], *, wrapped: bool) -> dict[str, Any]:
    """A 0.3 task, message or streamed event in 1.0's JSON; `wrapped` puts it under its type's key, as 1.0's
    SendMessageResponse and StreamResponse do."""
    kind = obj.get("kind")
    if kind == "task":
        body = _v1_task(obj)
        key = "task"
    elif kind == "message":
        body, key = _v1_message(obj), "message"
    elif kind == "status-update":
        body = {k: v for k, v in obj.items() if k not in ("kind", "final")}
        body["status"] = _v1_status(obj["status"])
        key = "statusUpdate"
    elif kind == "artifact-update":
        body = {k: v for k, v in obj.items() if k != "kind"}
        body["artifact"] = _v1_artifact(obj["artifact"])
        key = "artifactUpdate"
    else:
        raise ValueError(f"not an A2A object: {kind!r}")
    return {key: body} if wrapped else body


def _v1_task(obj: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in obj.items() if k != "kind"}
    body["status"] = _v1_status(obj["status"])
    if "artifacts" in obj:
        body["artifacts"] = [_v1_artifact(a) for a in obj["artifacts"]]
    if "history" in obj:
        body["history"] = [_v1_message(m) for m in obj["history"]]
    return body


def _v1_status(obj: dict[str, Any]) -> dict[str, Any]:
    body = {**obj, "state": V1_STATE[obj["state"]]}
    if "message" in obj:
        body["message"] = _v1_message(obj["message"])
    return body


def _v1_message(obj: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in obj.items() if k != "kind"}
    body["role"] = V1_ROLE.get(obj["role"], obj["role"])
    body["parts"] = [_v1_part(p) for p in obj["parts"]]
    return body


def _v1_artifact(obj: dict[str, Any]) -> dict[str, Any]:
    return {**obj, "parts": [_v1_part(p) for p in obj["parts"]]}


def _v1_part(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "text":
        return {"text": obj["text"]}
    if obj["kind"] == "data":
        return {"data": obj["data"]}
    file = obj["file"]
    body = {"raw": file["bytes"]} if "bytes" in file else {"url": file["uri"]}
    if file.get("mimeType"):
        body["mediaType"] = file["mimeType"]
    if file.get("name"):
        body["filename"] = file["name"]
    return body
