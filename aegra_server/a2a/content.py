"""Between A2A parts and a graph's state: a client's message as graph input, the graph's reply and the thread's
messages as A2A parts (in 0.3's JSON; see wire.py)."""

from __future__ import annotations

import uuid
from typing import Any

from aegra_server.a2a import wire
from aegra_server.a2a.wire import Part, PartError

AI_TYPES = {"ai", "AIMessageChunk"}
_FILE_BLOCKS = {"image", "audio", "video", "file"}


def graph_input(parts: list[Part], role: str, message_id: str) -> dict[str, Any]:
    """`{"messages": [the message]}` from the text and file parts, with each data part's keys beside it.

    One message however many parts: its content is the text when there is only one text part, else LangChain
    content blocks in the parts' order. The message keeps the client's id, so sending it again does not repeat it.
    """
    graph_in: dict[str, Any] = {}
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if part.is_data:
            if not isinstance(part.data, dict):
                raise PartError("A data part's 'data' must be a JSON object: its keys are the graph's input")
            graph_in.update(part.data)
        elif part.is_file:
            blocks.append(_file_block(part))
        else:
            blocks.append({"type": "text", "text": part.text})
    if blocks:
        content: Any = blocks[0]["text"] if len(blocks) == 1 and blocks[0]["type"] == "text" else blocks
        role_name = "human" if role in wire.USER_ROLES else "ai"
        graph_in["messages"] = [{"type": role_name, "content": content, "id": message_id}]
    if not graph_in:
        raise PartError("The message must have at least one text, file or data part")
    return graph_in


def _file_block(part: Part) -> dict[str, Any]:
    """A LangChain content block of the file's kind (image, audio, video or file); URLs are passed on unread."""
    kind = (part.media_type or "").split("/", 1)[0]
    block: dict[str, Any] = {"type": kind if kind in _FILE_BLOCKS else "file"}
    if part.file_bytes is not None:
        block["base64"] = part.file_bytes
    else:
        block["url"] = part.file_uri
    if part.media_type:
        block["mime_type"] = part.media_type
    if part.filename:
        block["extras"] = {"filename": part.filename}
    return block


def _current_turn(messages: list[Any]) -> list[Any]:
    """The messages after the last one from the user: what the graph answered this time."""
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], dict) and messages[index].get("type") == "human":
            return messages[index + 1:]
    return messages


def reply_parts(values: Any) -> list[dict[str, Any]]:
    """The graph's answer: its last AI message of this turn; a graph without messages answers with its state, as
    data (JSON a client can read, where langgraph-api sends Python's repr of it as text)."""
    messages = values.get("messages") if isinstance(values, dict) else None
    if not isinstance(messages, list) or not messages:
        return [wire.data_part(values if values is not None else {})]
    for message in reversed(_current_turn(messages)):
        if isinstance(message, dict) and message.get("type") in AI_TYPES:
            parts = content_parts(message.get("content"))
            if parts:
                return parts
    return [wire.text_part("")]


def content_parts(content: Any) -> list[dict[str, Any]]:
    """A message's content as parts: runs of text blocks joined into one text part, media blocks as files."""
    if isinstance(content, str):
        return [wire.text_part(content)] if content else []
    if not isinstance(content, list):
        return [wire.text_part(str(content))] if content is not None else []
    parts: list[dict[str, Any]] = []
    text: list[str] = []
    for block in content:
        if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text"):
            text.append(block if isinstance(block, str) else str(block.get("text", "")))
            continue
        if text:
            parts.append(wire.text_part("".join(text)))
            text = []
        if isinstance(block, dict) and block.get("type") in _FILE_BLOCKS:
            parts.append(_file_part(block))
    if text and "".join(text):
        parts.append(wire.text_part("".join(text)))
    return parts


def _file_part(block: dict[str, Any]) -> dict[str, Any]:
    file: dict[str, Any] = {"bytes": block["base64"]} if block.get("base64") else {"uri": block.get("url", "")}
    if block.get("mime_type"):
        file["mimeType"] = block["mime_type"]
    if (block.get("extras") or {}).get("filename"):
        file["name"] = block["extras"]["filename"]
    return {"kind": "file", "file": file}


def history(values: Any, task_id: str, context_id: str, length: int | None) -> list[dict[str, Any]]:
    """The thread's conversation as A2A messages (the last `length`; all when None): the user's and the agent's
    messages with content, and tool results as data. System messages are not part of it."""
    messages = values.get("messages") if isinstance(values, dict) else None
    converted = []
    for index, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict):
            continue
        # A message without an id gets the same one each time the history is read.
        kind = message.get("type")
        message_id = message.get("id") or str(uuid.uuid5(uuid.NAMESPACE_URL, f"a2a:{context_id}/{index}"))
        if kind == "human":
            parts = content_parts(message.get("content")) or [wire.text_part("")]
            converted.append(wire.message("user", parts, message_id, task_id, context_id))
        elif kind in AI_TYPES and (parts := content_parts(message.get("content"))):
            converted.append(wire.message("agent", parts, message_id, task_id, context_id))
        elif kind == "tool" and message.get("tool_call_id"):
            result = {"toolCallId": message["tool_call_id"], "content": message.get("content"),
                      "name": message.get("name"), "status": message.get("status")}
            parts = [wire.data_part({"tool_results": [{k: v for k, v in result.items() if v is not None}]})]
            converted.append(wire.message("agent", parts, message_id, task_id, context_id))
    if length is None:
        return converted
    return converted[-length:] if length else []


def response_artifact(values: Any, assistant_id: str) -> dict[str, Any]:
    return {"artifactId": str(uuid.uuid4()), "name": "Assistant Response",
            "description": f"Response from assistant {assistant_id}", "parts": reply_parts(values)}


def interrupt_artifact(interrupts: list[Any]) -> dict[str, Any]:
    """What the graph asks: each interrupt's id and value, for the client to answer with a `resume` data part."""
    parts = [wire.data_part({k: v for k, v in (i if isinstance(i, dict) else {"value": i}).items()
                             if k in ("id", "value")}) for i in interrupts]
    return {"artifactId": str(uuid.uuid4()), "name": "Interrupt", "description": "Agent requires input to continue",
            "parts": parts}
