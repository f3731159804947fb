"""Crons: a schedule plus the run it creates, for a thread or stateless.

Every timestamp is stored in UTC (SQLite keeps the wall time of whatever it is given, so a Paris time would be
stored as if it were UTC). The scheduler claims a due cron with a conditional UPDATE on its `next_run_date`,
so that of several server processes on one database exactly one fires each occurrence.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, true, update

from aegra_server.storage.common import NotFound, Page, fetch_page, order_by, row_dict
from aegra_server.storage.database import Database, utcnow
from aegra_server.storage.filters import auth_filter_clause, json_contains
from aegra_server.storage.tables import assistants, crons, threads

SORTABLE = {"cron_id", "assistant_id", "thread_id", "created_at", "updated_at", "next_run_date", "end_time"}
# Columns a PATCH may change; the rest (ids, created_at, user_id) are fixed at creation.
MUTABLE = {"schedule", "timezone", "payload", "metadata", "on_run_completed", "enabled", "end_time", "next_run_date"}

_INSERT = insert(crons)
_ASSISTANT_EXISTS = select(assistants.c.assistant_id).where(assistants.c.assistant_id == bindparam("b_assistant_id"))
_THREAD_EXISTS = select(threads.c.thread_id).where(threads.c.thread_id == bindparam("b_thread_id"))
_CLAIM = (
    update(crons)
    .where(crons.c.cron_id == bindparam("b_cron_id"), crons.c.next_run_date == bindparam("b_due"))
    .values(next_run_date=bindparam("b_next"))
)


def utc(value: datetime | None) -> datetime | None:
    """Any datetime as an aware UTC one; a naive one is taken to be UTC already."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_TIMES = ("end_time", "next_run_date", "created_at", "updated_at")


def _in_utc(data: dict[str, Any]) -> dict[str, Any]:
    """Timestamps as UTC whatever the database session's time zone, so the API shows `+00:00` everywhere."""
    for key in _TIMES:
        data[key] = utc(data[key])
    return data


def _cron(row: Any) -> dict[str, Any]:
    return _in_utc(row_dict(row))


def _by_id(cron_id: str):
    return select(crons).where(crons.c.cron_id == cron_id)


def _visible(query, auth_filter: dict[str, Any] | None, dialect: str):
    """Only crons an authorization filter lets through: the others look missing (404)."""
    return query.where(auth_filter_clause(crons.c.metadata, auth_filter, dialect)) if auth_filter else query


def _live(now: datetime):
    """Enabled and not past its end_time at `now`."""
    return and_(crons.c.enabled == true(), or_(crons.c.end_time.is_(None), crons.c.end_time >= now))


class CronRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        assistant_id: str,
        thread_id: str | None,
        schedule: str,
        timezone: str | None,
        payload: dict[str, Any],
        metadata: dict[str, Any] | None,
        on_run_completed: str | None,
        enabled: bool,
        end_time: datetime | None,
        next_run_date: datetime | None,
        user_id: str | None = None,
        thread_filter: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Insert a cron; NotFound when its assistant or thread does not exist (checked in the same transaction),
        or when `thread_filter` (the caller's authorization on threads) hides the thread."""
        now = utcnow()
        row = {
            "cron_id": str(uuid.uuid4()),
            "assistant_id": assistant_id,
            "thread_id": thread_id,
            "user_id": user_id,
            "schedule": schedule,
            "timezone": timezone,
            "payload": payload,
            "metadata": metadata or {},
            "on_run_completed": on_run_completed,
            "enabled": enabled,
            "end_time": utc(end_time),
            "next_run_date": utc(next_run_date),
            "created_at": now,
            "updated_at": now,
        }

        def create(conn: Connection) -> dict[str, Any]:
            if conn.execute(_ASSISTANT_EXISTS, {"b_assistant_id": assistant_id}).first() is None:
                raise NotFound(f"assistant {assistant_id} not found")
            if thread_id is not None:
                query = _THREAD_EXISTS
                if thread_filter:
                    query = query.where(auth_filter_clause(threads.c.metadata, thread_filter, self.db.dialect))
                if conn.execute(query, {"b_thread_id": thread_id}).first() is None:
                    raise NotFound(f"thread {thread_id} not found")
            conn.execute(_INSERT, row)
            return row

        return await self.db.write(create)

    async def get(self, cron_id: str, *, auth_filter: dict[str, Any] | None = None) -> dict[str, Any]:
        query = _visible(_by_id(cron_id), auth_filter, self.db.dialect)
        row = await self.db.read(lambda conn: conn.execute(query).first())
        if row is None:
            raise NotFound(f"cron {cron_id} not found")
        return _cron(row)

    async def update(
        self,
        cron_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        auth_filter: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Read-modify-write in one transaction: `change(cron)` returns the columns to set (from MUTABLE).

        `change` runs inside the transaction, so a schedule recomputed from the stored one cannot race another
        update; it may raise to abandon the update.
        """

        def patch(conn: Connection) -> dict[str, Any]:
            found = conn.execute(_visible(_by_id(cron_id), auth_filter, self.db.dialect)).first()
            if found is None:
                raise NotFound(f"cron {cron_id} not found")
            row = _cron(found)
            changes = change(dict(row))
            unknown = set(changes) - MUTABLE
            if unknown:
                raise ValueError(f"cron columns {sorted(unknown)} cannot be changed")
            for key in ("end_time", "next_run_date"):
                if key in changes:
                    changes[key] = utc(changes[key])
            changes["updated_at"] = utcnow()
            conn.execute(update(crons).where(crons.c.cron_id == cron_id).values(changes))
            return {**row, **changes}

        return await self.db.write(patch)

    async def delete(self, cron_id: str, *, auth_filter: dict[str, Any] | None = None) -> None:
        query = delete(crons).where(crons.c.cron_id == cron_id)
        if auth_filter:
            query = query.where(auth_filter_clause(crons.c.metadata, auth_filter, self.db.dialect))
        if await self.db.write(lambda conn: conn.execute(query).rowcount) == 0:
            raise NotFound(f"cron {cron_id} not found")

    def _filtered(self, query, *, assistant_id=None, thread_id=None, enabled=None, metadata=None, auth_filter=None):
        query = _visible(query, auth_filter, self.db.dialect)
        if assistant_id:
            query = query.where(crons.c.assistant_id == assistant_id)
        if thread_id:
            query = query.where(crons.c.thread_id == thread_id)
        if enabled is not None:
            query = query.where(crons.c.enabled == enabled)
        if metadata:
            query = query.where(json_contains(crons.c.metadata, metadata, self.db.dialect))
        return query

    async def search(
        self,
        *,
        assistant_id=None,
        thread_id=None,
        enabled=None,
        metadata=None,
        limit=10,
        offset=0,
        sort_by=None,
        sort_order=None,
        auth_filter=None,
    ) -> Page:
        query = self._filtered(
            select(crons),
            assistant_id=assistant_id,
            thread_id=thread_id,
            enabled=enabled,
            metadata=metadata,
            auth_filter=auth_filter,
        ).order_by(*order_by(crons, sort_by, sort_order, SORTABLE, "created_at"))

        def search(conn: Connection) -> Page:
            page = fetch_page(conn, query, limit=limit, offset=offset)
            for item in page.items:
                _in_utc(item)
            return page

        return await self.db.read(search)

    async def count(self, *, assistant_id=None, thread_id=None, enabled=None, metadata=None, auth_filter=None) -> int:
        query = self._filtered(
            select(func.count()).select_from(crons),
            assistant_id=assistant_id,
            thread_id=thread_id,
            enabled=enabled,
            metadata=metadata,
            auth_filter=auth_filter,
        )
        return await self.db.read(lambda conn: conn.execute(query).scalar_one())

    # ---- for the scheduler ----------------------------------------------------------------------------------

    async def due(self, now: datetime, *, limit: int = 100) -> list[dict[str, Any]]:
        """Enabled crons whose next run is at or before `now` and whose end_time has not passed, oldest first."""
        now = utc(now)
        query = (
            select(crons)
            .where(_live(now), crons.c.next_run_date <= now)
            .order_by(crons.c.next_run_date, crons.c.cron_id)
            .limit(limit)
        )
        return await self.db.read(lambda conn: [_cron(r) for r in conn.execute(query).all()])

    async def claim(self, cron_id: str, due: datetime, next_run_date: datetime | None) -> bool:
        """Move a cron's next run from `due` to `next_run_date`; True only for the one caller that did it.

        Whoever else read the same `due` finds the row changed and updates nothing: on Postgres the second
        UPDATE waits for the first to commit and then re-checks its WHERE; SQLite has one writer at a time.
        """
        params = {"b_cron_id": cron_id, "b_due": utc(due), "b_next": utc(next_run_date)}
        return await self.db.write(lambda conn: conn.execute(_CLAIM, params).rowcount) == 1

    async def soonest(self, now: datetime) -> datetime | None:
        """The earliest next run of any cron that can still fire, or None."""
        now = utc(now)
        query = select(func.min(crons.c.next_run_date)).where(
            _live(now),
            or_(crons.c.end_time.is_(None), crons.c.end_time >= crons.c.next_run_date),
        )
        return utc(await self.db.read(lambda conn: conn.execute(query).scalar()))


__all__ = ["CronRepository", "SORTABLE", "utc"]
