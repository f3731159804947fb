"""Small pieces every repository uses: paging, sorting, row → dict."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, Table, func, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from uuid_utils.compat import uuid7

from aegra_server.storage.database import as_utc

MAX_PAGE = 1000


def new_id() -> str:
    """A thread's or run's id: a uuid7 as langgraph-api mints, so sorting by id follows creation."""
    return str(uuid7())


class NotFound(LookupError):
    """The resource does not exist (404)."""


class Conflict(Exception):
    """The resource exists or is busy (409)."""


def insert_unless_taken(conn: Connection, table: Table, row: dict[str, Any], *, on_sqlite: Any = None) -> bool:
    """Insert `row`, whose key the transaction found free; False when another transaction has taken it since.

    On Postgres two transactions can both find a key free (a row that does not exist cannot be locked); the
    second then waits for the first's insert and inserts nothing, instead of failing on the duplicate. SQLite's
    single writer never lets them overlap. `on_sqlite`: a storage.prepared.Prepared insert to use there."""
    if conn.dialect.name == "postgresql":
        return conn.execute(_unless_taken(table), row).first() is not None  # (an INSERT's rowcount is -1 there)
    if on_sqlite is not None:
        on_sqlite.execute(conn, row)
    else:
        conn.execute(insert(table), row)
    return True


@cache
def _unless_taken(table: Table):
    key = list(table.primary_key)
    return postgresql.insert(table).on_conflict_do_nothing(index_elements=key).returning(*key)


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.items)
        return end if end < self.total else None


def row_dict(row: Row) -> dict[str, Any]:
    return utc_timestamps(dict(row._mapping))


def utc_timestamps(data: dict[str, Any]) -> dict[str, Any]:
    for key in ("created_at", "updated_at", "state_updated_at", "expires_at"):
        if key in data:
            data[key] = as_utc(data[key])
    return data


def order_by(
    table: Table, sort_by: str | None, sort_order: str | None, allowed: set[str], default: str, ignore_case: frozenset[str] = frozenset()
):
    """The ORDER BY of a search; the columns in `ignore_case` sort as people read them (alpha, Beta, beta2)."""
    name = sort_by if sort_by in allowed else default
    column = func.lower(table.c[name]) if name in ignore_case else table.c[name]
    # Ties on equal timestamps are broken by the id so that paging is stable.
    tie = table.primary_key.columns.values()[0]
    if (sort_order or "desc").lower() == "asc":
        return [column.asc(), tie.asc()]
    return [column.desc(), tie.desc()]


def fetch_page(conn: Connection, query: Select, *, limit: int, offset: int) -> Page:
    total = conn.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    rows = conn.execute(query.limit(limit).offset(offset)).all()
    return Page([row_dict(r) for r in rows], total, offset)


def first(conn: Connection, query: Select, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
    row = conn.execute(query, params).first()
    return None if row is None else row_dict(row)
