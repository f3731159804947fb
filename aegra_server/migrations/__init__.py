"""Schema migrations for Aegra's own tables, on SQLite and Postgres alike.

Alembic is driven through its Python API (`alembic.command` with a `Config` built in code) rather than its
CLI and an alembic.ini, because:

- the scripts ship inside the wheel, so their location is this package's folder, found at runtime; an ini
  file with a relative `script_location` only works from a source checkout;
- `aegra migrate` and server start-up must run the very same code, with the URL Aegra resolved (flag > env
  > POSTGRES_* > project SQLite), not whatever an ini file or the working directory says;
- we need the connection in our hands: on Postgres an advisory lock is taken on that connection around the
  upgrade so several server processes starting at once migrate one after another, and on SQLite the
  upgrade runs in one `BEGIN IMMEDIATE` transaction for the same reason;
- failures must come out as `DatabaseError` with the password redacted and a hint, not a traceback.

The `alembic.ini` next to this file is only for developers running the Alembic CLI (see its comments).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from aegra_server.errors import DatabaseError
from aegra_server.observability.redact import hide_secret
from aegra_server.storage.urls import DatabaseUrl, parse_database_url

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported only where it is needed: every server process checks the schema as it starts, and a
# database already at HEAD (the common case) needs only one SELECT, not half a second of importing Alembic.

SCRIPT_LOCATION = Path(__file__).resolve().parent
# The newest revision in versions/ (tests/storage/test_migrations.py checks it against Alembic's own answer).
HEAD = "0006"

# Key of the Postgres advisory lock that serialises migrators: the bytes of "aegra-db" as a signed 64-bit int.
# Fixed forever, so that every Aegra version ever deployed against one database agrees on it.
MIGRATION_LOCK_KEY = 0x61656772612D6462

# How long a SQLite migrator waits for another one holding the write lock.
SQLITE_BUSY_TIMEOUT_SECONDS = 30


def alembic_config() -> Config:
    """An Alembic config pointing at the scripts in this package; no ini file involved."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    return config


def head() -> str:
    """The newest revision this version of Aegra knows, as Alembic finds it in versions/."""
    from alembic.script import ScriptDirectory

    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None, "aegra_server/migrations/versions holds no revisions"
    return revision


def upgrade(database_url: str) -> str:
    """Bring the database to the newest revision (a no-op when already there) and return that revision.

    Creates the SQLite file and its folder if needed and switches it to WAL. Safe to run from several
    processes at once: they are serialised, and all but the first find nothing to do.
    """
    url = parse_database_url(database_url)
    if url.dialect == "sqlite" and not url.is_memory:
        folder = Path(url.sqlite_path).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(
                f"Cannot create the folder {folder} for the SQLite database: {exc.strerror or exc}",
                hint="check the path in DATABASE_URL and that you may write there",
            ) from exc
    with _connected(url, for_upgrade=True) as connection:
        if _revision(connection) == HEAD:
            return HEAD
        from alembic import command
        from alembic.runtime.migration import MigrationContext
        from alembic.util.exc import CommandError

        config = alembic_config()
        try:
            with _migration_lock(connection), connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                revision = MigrationContext.configure(connection).get_current_revision()
        except CommandError as exc:
            raise DatabaseError(
                f"Cannot migrate the database at {url.redacted}: {exc}",
                hint="a newer Aegra may have migrated it; upgrade Aegra or use a fresh database",
            ) from exc
        except SQLAlchemyError as exc:
            raise DatabaseError(
                f"Migrating the database at {url.redacted} failed: {_cause(exc, url)}",
                hint="nothing was changed; fix the cause and run `aegra migrate` again",
            ) from exc
    assert revision is not None
    return revision


def current(database_url: str) -> str | None:
    """The revision the database is at, or None if it was never migrated. Changes nothing, creates no file."""
    url = parse_database_url(database_url)
    if url.dialect == "sqlite" and (url.is_memory or not Path(url.sqlite_path).exists()):
        return None
    from alembic.runtime.migration import MigrationContext

    with _connected(url, for_upgrade=False) as connection:
        try:
            return MigrationContext.configure(connection).get_current_revision()
        except SQLAlchemyError as exc:
            raise DatabaseError(
                f"Cannot read the schema revision of {url.redacted}: {_cause(exc, url)}",
                hint="run `aegra migrate` to set the database up",
            ) from exc


@contextmanager
def _connected(url: DatabaseUrl, *, for_upgrade: bool) -> Iterator[Connection]:
    engine = _engine(url, for_upgrade=for_upgrade)
    try:
        try:
            connection = engine.connect()
        except DBAPIError as exc:
            raise cannot_connect(url, exc) from exc
        with connection:
            yield connection
    finally:
        engine.dispose()


def _engine(url: DatabaseUrl, *, for_upgrade: bool) -> Engine:
    if url.dialect == "postgresql":
        return create_engine(url.sqlalchemy_sync, connect_args={"connect_timeout": 10})
    engine = create_engine(url.sqlalchemy_sync, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
    if for_upgrade:
        # pysqlite opens transactions lazily and never before DDL, so two migrators could both see an empty
        # database and both create the tables. Take SQLite's write lock up front instead, like Postgres'
        # advisory lock (recipe from the SQLAlchemy SQLite dialect docs, "Serializable isolation").
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
            dbapi_connection.isolation_level = None
            # WAL lets the server's readers and its one writer work at once. The mode is stored in the file,
            # and it can only be switched outside a transaction, so here.
            if not url.is_memory:
                _switch_to_wal(dbapi_connection)

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _switch_to_wal(dbapi_connection: sqlite3.Connection) -> None:
    """Switch the file to WAL, waiting as long as the busy timeout while another process holds it.

    The switch reads the file (a shared lock), then needs it alone. When another connection has started
    writing meanwhile (another migrator switching it first, or holding its write lock), SQLite answers
    "database is locked" at once instead of calling the busy handler, since both waiting could deadlock;
    so wait here, without the shared lock, and try again. Once another process has switched it, it is a no-op.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            # SQLITE_BUSY, in any of its extended forms; not SQLITE_LOCKED (a table locked on this connection).
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _revision(connection: Connection) -> str | None:
    """The database's revision read without Alembic; None when it cannot tell (no version table yet, or
    several rows), where Alembic then decides."""
    try:
        with connection.begin():
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return None
    return rows[0][0] if len(rows) == 1 else None


@contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    """On Postgres, hold the migration advisory lock; a session lock, so it outlives the upgrade's COMMIT."""
    if connection.dialect.name != "postgresql":
        yield
        return
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.commit()
    try:
        yield
    finally:
        if connection.in_transaction():
            connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()


def _cause(exc: Exception, url: DatabaseUrl) -> str:
    """The driver's own words, on one line, without the password should a driver ever echo it."""
    original = getattr(exc, "orig", None) or exc
    return hide_secret(" ".join(str(original).split()) or type(original).__name__, url.password)


def cannot_connect(url: DatabaseUrl, exc: Exception) -> DatabaseError:
    """What a failed connection says to the user: the driver's words and the likely fix. For SQLAlchemy's errors
    and the driver's own (psycopg's, where the server connects without SQLAlchemy)."""
    return DatabaseError(
        f"Cannot connect to the database at {url.redacted}: {_cause(exc, url)}", hint=_connect_hint(url, exc)
    )


def _connect_hint(url: DatabaseUrl, exc: Exception) -> str:
    message = str(getattr(exc, "orig", None) or exc).lower()
    if url.dialect == "sqlite":
        return f"check that {Path(url.sqlite_path).parent} exists and that you may write there"
    if "password authentication failed" in message or "no password supplied" in message:
        return "check the user name and password in DATABASE_URL"
    if "does not exist" in message:
        return "create the database (e.g. `createdb`) or fix its name in DATABASE_URL"
    return "is Postgres running and reachable? `aegra up` starts one; check DATABASE_URL"
