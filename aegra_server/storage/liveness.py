"""Whether a pooled Postgres connection still works, decided as it leaves its pool.

A database restart, a failover or pg_terminate_backend closes every connection, and a pool learns it only when it
next uses one: that request would fail. Pinging at every checkout (SQLAlchemy's pool_pre_ping, psycopg_pool's
check_connection) costs a round trip per transaction. Instead a connection is pinged only when

- it has something to read while idle: the server closed it (it sends its reason, then EOF), which one poll()
  tells without a round trip;
- or it sat idle for a while, long enough for a network path to have dropped it silently.

Both pools of a server use this rule: our tables' (SQLAlchemy) and LangGraph's checkpointer and store (psycopg).
"""

from __future__ import annotations

import select
import time
import weakref

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

PING_AFTER_IDLE_SECONDS = 10.0
NEVER_USED = float("-inf")  # the return time of a new connection: checked at its first use


def worth_a_ping(conn, idle_seconds: float) -> bool:
    """`conn`: a psycopg connection (sync or async)."""
    if conn.closed or idle_seconds >= PING_AFTER_IDLE_SECONDS:
        return True
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN)
    return bool(poller.poll(0))


def ping_when_needed(engine: Engine) -> None:
    """The rule for a SQLAlchemy engine on psycopg: a connection that fails its ping is replaced before use."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection, record, _proxy) -> None:
        driver_connection = getattr(dbapi_connection, "driver_connection", dbapi_connection)
        if not worth_a_ping(driver_connection, time.monotonic() - record.info.get("returned_at", NEVER_USED)):
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:
            alive = False
        if not alive:
            raise DisconnectionError("connection lost while idle")  # the pool connects afresh


class PoolCheck:
    """The rule for a psycopg_pool.AsyncConnectionPool: pass `check` and `returned` as its `check` and `reset`
    callbacks. A connection that fails the check is discarded and the pool hands out another."""

    def __init__(self) -> None:
        self._returned_at: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    async def returned(self, conn) -> None:
        self._returned_at[conn] = time.monotonic()

    async def check(self, conn) -> None:
        if worth_a_ping(conn, time.monotonic() - self._returned_at.get(conn, NEVER_USED)):
            await conn.execute("")  # raises on a connection the server closed
