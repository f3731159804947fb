"""Statements executed on the SQLite driver store and read exactly what SQLAlchemy stores and reads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from aegra_server import migrations
from aegra_server.storage.common import first
from aegra_server.storage.database import Database
from aegra_server.storage.prepared import Prepared
from aegra_server.storage.tables import run_events, threads
from aegra_server.storage.urls import parse_database_url

BY_ID = select(threads).where(threads.c.thread_id == bindparam("b_id"))
RAW = 'SELECT status, metadata, config, "values", interrupts, created_at, updated_at, ttl, expires_at FROM threads WHERE thread_id = ?'


def _row(thread_id: str) -> dict:
    when = datetime(2026, 11, 27, 18, 30, 15, 123456, tzinfo=UTC)
    return {
        "thread_id": thread_id,
        "status": "idle",
        "metadata": {"name": "Zoë", "nested": {"n": [1, 2.5, None, True]}},
        "config": {},
        "values": None,
        "interrupts": {},
        "created_at": when,
        "updated_at": when,
        "state_updated_at": when,
        # ttl and expires_at left out: NULL either way
    }


@pytest.fixture
async def db(sqlite_url: str):
    migrations.upgrade(sqlite_url)
    database = Database(parse_database_url(sqlite_url))
    yield database
    await database.close()


async def test_rows_written_both_ways_are_stored_alike_and_read_back_alike(db: Database):
    prepared_insert, prepared_get = Prepared(insert(threads)), Prepared(BY_ID)

    def write(conn) -> None:
        prepared_insert.execute(conn, _row("prepared"))
        conn.execute(insert(threads), _row("sqlalchemy"))

    await db.write(write)

    def stored(conn, thread_id: str):
        return conn.connection.dbapi_connection.execute(RAW, (thread_id,)).fetchone()

    assert await db.read(stored, "prepared") == await db.read(stored, "sqlalchemy")
    ours = await db.read(lambda conn: prepared_get.first(conn, {"b_id": "prepared"}))
    theirs = await db.read(lambda conn: first(conn, BY_ID, {"b_id": "prepared"}))
    assert ours == theirs
    assert ours["metadata"] == _row("x")["metadata"] and ours["created_at"] == _row("x")["created_at"]
    assert await db.read(lambda conn: prepared_get.first(conn, {"b_id": "missing"})) is None


async def test_fixed_values_repeated_parameters_and_returning(db: Database):
    """An UPDATE with a literal in it (status = 'busy' where status = 'idle'), a parameter used twice and
    RETURNING: the statement shapes the run path uses."""
    await db.write(lambda conn: Prepared(insert(threads)).execute(conn, _row("t")))
    mark = Prepared(
        update(threads)
        .where(threads.c.thread_id == bindparam("b_id"), threads.c.status == "idle")
        .values(status="busy", updated_at=bindparam("b_now"), state_updated_at=bindparam("b_now"))
        .returning(threads.c.status, threads.c.updated_at)
    )
    later = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert await db.write(lambda conn: mark.first(conn, {"b_id": "t", "b_now": later})) == {
        "status": "busy",
        "updated_at": later,
    }
    assert await db.write(lambda conn: mark.first(conn, {"b_id": "t", "b_now": later})) is None  # no longer idle
    row = await db.read(lambda conn: first(conn, BY_ID, {"b_id": "t"}))
    assert (row["status"], row["updated_at"], row["state_updated_at"]) == ("busy", later, later)
    with pytest.raises(KeyError, match="b_now"):  # only an INSERT's row may leave columns out
        await db.write(lambda conn: mark.first(conn, {"b_id": "t"}))


async def test_many_rows_at_once(db: Database):
    rows = [_row(f"t{i}") for i in range(5)]
    await db.write(Prepared(insert(threads)).execute_many, rows)
    count = await db.read(lambda conn: conn.connection.dbapi_connection.execute("SELECT count(*) FROM threads").fetchone())
    assert count == (5,)


def test_a_table_with_column_defaults_is_refused():
    """A row that leaves a column out gets NULL here, where SQLAlchemy would apply the column's default."""
    table = Table("with_default", MetaData(), Column("id", Integer, primary_key=True), Column("n", Integer, default=1))
    with pytest.raises(ValueError, match="with_default has column defaults"):
        Prepared(insert(table))


@pytest.mark.parametrize("many", [False, True])
async def test_a_statement_the_database_refuses_raises_sqlalchemys_error_either_way(db: Database, many: bool):
    """Callers catch SQLAlchemy's exceptions (an IntegrityError for a duplicate key or a missing row a foreign key
    names): the driver's own must not slip past them."""
    prepared = Prepared(insert(run_events))
    event = {"run_id": "no-such-run", "seq": 0, "event": "values", "data": b"{}"}

    def write(conn) -> None:
        if many:
            prepared.execute_many(conn, [event])
        else:
            prepared.execute(conn, event)

    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        await db.write(write)
