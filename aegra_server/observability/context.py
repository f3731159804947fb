"""Correlation ids of the work in progress, carried by contextvars so every log line can name them.

A request sets `request_id` for its own task. A run executes in a task of its own, possibly much later or in
another process, so the creating request's id travels in the run's kwargs (`origin_of_run`) and is set again
when the run starts (`run_scope`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

REQUEST_ID_HEADER = "x-request-id"
# A client's id is kept only if it is short and printable, so it cannot forge log lines or bloat them.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")

request_id: ContextVar[str | None] = ContextVar("aegra_request_id", default=None)
run_fields: ContextVar[Mapping[str, str] | None] = ContextVar("aegra_run_fields", default=None)


def accept_request_id(header: str | None) -> str:
    """The client's X-Request-ID when it is a sane token, else a fresh uuid4."""
    if header and _VALID_REQUEST_ID.fullmatch(header):
        return header
    return str(uuid.uuid4())


def current_fields() -> dict[str, str]:
    """The ids a log line of the current task carries."""
    fields: dict[str, str] = {}
    rid = request_id.get()
    if rid is not None:
        fields["request_id"] = rid
    run = run_fields.get()
    if run:
        fields.update(run)
    return fields


@contextmanager
def run_scope(run: Mapping[str, Any], graph_id: str) -> Iterator[None]:
    """Within: log lines carry the run's ids and the id of the request that created it."""
    origin = (run.get("kwargs") or {}).get("request_id")
    request_token = request_id.set(origin if isinstance(origin, str) else None)
    run_token = run_fields.set(
        {
            "run_id": str(run["run_id"]),
            "thread_id": str(run["thread_id"]),
            "assistant_id": str(run["assistant_id"]),
            "graph_id": graph_id,
        }
    )
    try:
        yield
    finally:
        run_fields.reset(run_token)
        request_id.reset(request_token)
