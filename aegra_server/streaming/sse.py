"""Server-sent events framing, byte-compatible with langgraph-api: CRLF line ends, compact JSON data, an `id:`
line only when the stream is resumable, and `: heartbeat` comments while idle."""

from __future__ import annotations

HEARTBEAT = b": heartbeat\r\n\r\n"
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
SSE_MEDIA_TYPE = "text/event-stream"


def frame(event: str, data: bytes, event_id: str | None = None) -> bytes:
    parts = [b"event: ", event.encode(), b"\r\ndata: ", data, b"\r\n"]
    if event_id is not None:
        parts += [b"id: ", event_id.encode(), b"\r\n"]
    parts.append(b"\r\n")
    return b"".join(parts)
