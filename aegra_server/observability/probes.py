"""Readiness checks: each part the server needs to do work, asked one cheap question with a deadline.

Used by /health and /ready. A failure names the part and the exception's type, never its message (it can
carry hosts, user names or SQL).
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


def _checks(services: Services) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "database": lambda: services.repos.db.read(lambda conn: conn.execute(text("SELECT 1")).scalar()),
        "checkpointer": lambda: services.checkpointer.aget_tuple({"configurable": {"thread_id": _PROBE_THREAD}}),
        "store": lambda: services.store.aget(_PROBE_NAMESPACE, "probe"),
    }


async def _outcome(check: Callable[[], Awaitable[Any]]) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"timed out after {CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as exc:
        return f"failed: {type(exc).__name__}"
    return "ok"


async def check_components(services: Services) -> dict[str, str]:
    """{part: "ok" or what went wrong}, all parts checked at once."""
    checks = _checks(services)
    outcomes = await asyncio.gather(*(_outcome(check) for check in checks.values()))
    return dict(zip(checks, outcomes, strict=True))
