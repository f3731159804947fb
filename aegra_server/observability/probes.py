"""Readiness checks: each part the server needs to do work, asked one cheap question with a deadline.

Used by /health, /ready and /ok?check_db=1. A failure names the part and the exception's type, never its message
(it can carry hosts, user names or SQL).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

if TYPE_CHECKING:
    from aegra_server.services import Services

CHECK_TIMEOUT_SECONDS = 5.0
# A thread and a namespace nobody uses: the checks read them and expect nothing.
_PROBE_THREAD = str(uuid.UUID(int=0))
_PROBE_NAMESPACE = ("aegra", "probe")


_CHECKS: dict[str, Callable[[Services], Awaitable[Any]]] = {
    "database": lambda services: services.repos.db.read(lambda conn: conn.execute(text("SELECT 1")).scalar()),
    "checkpointer": lambda services: services.checkpointer.aget_tuple(
        {"configurable": {"thread_id": _PROBE_THREAD}}
    ),
    "store": lambda services: services.store.aget(_PROBE_NAMESPACE, "probe"),
}
COMPONENTS = tuple(_CHECKS)


async def _outcome(check: Callable[[Services], Awaitable[Any]], services: Services) -> str:
    try:  # the call too: a part that is gone can fail before it awaits anything
        await asyncio.wait_for(check(services), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"timed out after {CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as exc:
        return f"failed: {type(exc).__name__}"
    return "ok"


async def check_components(services: Services) -> dict[str, str]:
    """{part: "ok" or what went wrong}, all parts checked at once."""
    outcomes = await asyncio.gather(*(_outcome(check, services) for check in _CHECKS.values()))
    return dict(zip(COMPONENTS, outcomes, strict=True))
