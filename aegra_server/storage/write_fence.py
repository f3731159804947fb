"""A run's checkpoints reach a shared database only while its process still holds the run.

Processes sharing a database hold the runs they execute by a lease (aegra_server.runs.manager). A process cut off
from the database, or stalled, for longer than the lease may find another process resumed the run meanwhile; the
checkpoints its graph then writes would land beside the other's (a second branch of the thread's history). So the
run's attempt sets a guard in its context (`guard`), which every asynchronous task the graph starts inherits, and
the checkpointer asks it (`check`) right before a write reaches the database: on Postgres once a pooled
connection is in hand (waiting for one is where a cut-off write sits), on a shared SQLite file before a
checkpoint is written (the connection there also carries the server's own tables). Outside a run's attempt, or on
a database nobody shares, there is no guard and nothing is asked. Store items are not fenced: one shared task
writes every caller's, in its own context.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar


class LeaseLost(Exception):
    """The process no longer knows that it holds the run whose write this is: its lease ran out unrenewed."""


_guard: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar("aegra_write_guard", default=None)


def guard(check: Callable[[], Awaitable[None]]) -> None:
    """Guard writes from the current context (a run's attempt) on: `check` raises LeaseLost to refuse one."""
    _guard.set(check)


async def check() -> None:
    """Raise LeaseLost if the current context's run may no longer write."""
    current = _guard.get()
    if current is not None:
        await current()
