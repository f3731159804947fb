"""The statements every run executes, run straight on the SQLite driver.

SQLAlchemy Core spends more time per statement than SQLite does: building the execution context, processing
each parameter, wrapping the cursor and its rows. A run's three transactions (create its thread, create it,
record its end) took 0.43 ms of CPU through SQLAlchemy and 0.23 ms on the bare driver (measured); through
`Prepared`, 0.36 ms. It matters most to `aegra serve --workers N`, whose workers take turns writing one file:
there the time each of these transactions holds the turn fell by about 40%, and with it what bounded how many
runs the workers serve together.

A `Prepared` statement is compiled once per dialect by SQLAlchemy, which also supplies the conversion of every
parameter and result column (its bind and result processors, so datetimes and JSON are stored exactly as
through SQLAlchemy); on SQLite it is then executed on the driver connection, inside the same transaction. On
Postgres it goes through SQLAlchemy as any other statement.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

from aegra_server.storage.common import row_dict, utc_timestamps

Params = Mapping[str, Any]


def _impl(type_, dialect: Dialect):
    """The dialect's form of a type (SQLite's DateTime stores a string): the one whose processors SQLAlchemy uses."""
    return type_.dialect_impl(dialect)


class _Compiled:
    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        # Parameters in their order in the SQL (a name may occur twice): (name, conversion, required, value).
        # One not required is a literal SQLAlchemy turned into a parameter (status == "pending"), converted here.
        self.params: list[tuple[str, Callable | None, bool, Any]] = []
        for name in compiled.positiontup:
            bind = binds[name]
            process = _impl(bind.type, dialect).bind_processor(dialect)
            value = process(bind.value) if not bind.required and process is not None else bind.value
            self.params.append((name, process, bind.required, value))
        self.insert = isinstance(statement, Insert)
        columns = list(getattr(statement, "selected_columns", None) or statement.exported_columns)
        self.columns = [column.key for column in columns]
        self.results = [_impl(column.type, dialect).result_processor(dialect, None) for column in columns]

    def values(self, params: Params) -> list[Any]:
        out = []
        for name, process, required, fixed in self.params:
            if not required:
                out.append(fixed)
            elif name in params:
                value = params[name]
                out.append(process(value) if process is not None else value)
            elif self.insert:
                # A column an INSERT row leaves out is SQL NULL, as SQLAlchemy stores it (our tables have no
                # column defaults: Prepared checks), not passed through its type (JSON would make it 'null').
                out.append(None)
            else:
                raise KeyError(f"a value is required for parameter {name!r}")
        return out

    def row(self, raw: Sequence[Any]) -> dict[str, Any]:
        return {
            name: process(value) if process is not None else value
            for name, process, value in zip(self.columns, self.results, raw, strict=True)
        }


@contextmanager
def _as_sqlalchemy_raises(sql: str, params: Any) -> Iterator[None]:
    """The driver's errors as SQLAlchemy raises them (sqlite3.IntegrityError as sqlalchemy.exc.IntegrityError...),
    which is what callers catch, whichever way a statement went."""
    try:
        yield
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc


class Prepared:
    def __init__(self, statement: ClauseElement) -> None:
        if isinstance(statement, Insert):
            table = statement.table
            if any(column.default is not None or column.server_default is not None for column in table.columns):
                raise ValueError(f"{table.name} has column defaults, which Prepared would not apply")
        self.statement = statement
        # Per engine's dialect (its JSON serializer is the engine's); weak, so engines closed in tests go.
        self._compiled: weakref.WeakKeyDictionary[Dialect, _Compiled] = weakref.WeakKeyDictionary()

    def _for(self, conn: Connection) -> _Compiled | None:
        dialect = conn.dialect
        if dialect.name != "sqlite":
            return None
        compiled = self._compiled.get(dialect)
        if compiled is None:
            compiled = self._compiled[dialect] = _Compiled(self.statement, dialect)
        return compiled

    def execute(self, conn: Connection, params: Params) -> int:
        """How many rows the statement changed."""
        compiled = self._for(conn)
        if compiled is None:
            return conn.execute(self.statement, params).rowcount
        values = compiled.values(params)
        with _as_sqlalchemy_raises(compiled.sql, values):
            return conn.connection.dbapi_connection.execute(compiled.sql, values).rowcount

    def execute_many(self, conn: Connection, rows: Sequence[Params]) -> None:
        compiled = self._for(conn)
        if compiled is None:
            conn.execute(self.statement, list(rows))
            return
        values = [compiled.values(row) for row in rows]
        with _as_sqlalchemy_raises(compiled.sql, values):
            conn.connection.dbapi_connection.executemany(compiled.sql, values)

    def first(self, conn: Connection, params: Params) -> dict[str, Any] | None:
        """The first row of a SELECT (or RETURNING) as a dict, timestamps in UTC, as common.first gives it."""
        compiled = self._for(conn)
        if compiled is None:
            row = conn.execute(self.statement, params).first()
            return None if row is None else row_dict(row)
        values = compiled.values(params)
        with _as_sqlalchemy_raises(compiled.sql, values):
            raw = conn.connection.dbapi_connection.execute(compiled.sql, values).fetchone()
        return None if raw is None else utc_timestamps(compiled.row(raw))
