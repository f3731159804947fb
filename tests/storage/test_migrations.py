"""Migrations on real SQLite files and real Postgres databases."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects import postgresql

from aegra_server import migrations
from aegra_server.errors import DatabaseError
from aegra_server.storage.tables import metadata
from aegra_server.storage.urls import parse_database_url
from tests.postgres import password_role, url_for_database

OUR_TABLES = set(metadata.tables)
OUR_INDEXES = {index.name for table in metadata.tables.values() for index in table.indexes}


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(parse_database_url(url).sqlalchemy_sync)


def _table_names(url: str) -> set[str]:
    engine = _engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _version_rows(url: str) -> list[str]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


# Both backends ------------------------------------------------------------------------------------------


def test_fresh_database_is_not_migrated(database_url: str) -> None:
    assert migrations.current(database_url) is None


def test_upgrade_creates_all_tables_and_indexes(database_url: str) -> None:
    assert migrations.upgrade(database_url) == migrations.head()

    engine = _engine(database_url)
    try:
        inspector = sa.inspect(engine)
        assert OUR_TABLES | {"alembic_version"} <= set(inspector.get_table_names())
        indexes = {ix["name"] for table in OUR_TABLES for ix in inspector.get_indexes(table)}
    finally:
        engine.dispose()
    assert {"assistants", "assistant_versions", "threads", "runs"} <= OUR_TABLES
    assert OUR_INDEXES == indexes


def test_upgrade_is_idempotent(database_url: str) -> None:
    first = migrations.upgrade(database_url)
    second = migrations.upgrade(database_url)

    assert first == second == migrations.head() == migrations.current(database_url)
    assert _version_rows(database_url) == [migrations.head()]


def test_migrated_schema_matches_tables_module(database_url: str) -> None:
    migrations.upgrade(database_url)
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == [], "a revision is missing: tables.py and the migrated schema differ"


def _alembic(url: str, run, target: str) -> None:
    """Run `command.upgrade`/`command.downgrade` to a given revision, the way `migrations.upgrade` does."""
    parsed = parse_database_url(url)
    if parsed.sqlite_path:
        Path(parsed.sqlite_path).parent.mkdir(parents=True, exist_ok=True)
    config = migrations.alembic_config()
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            run(config, target)
    finally:
        engine.dispose()


def test_downgrade_to_base_drops_our_tables(database_url: str) -> None:
    migrations.upgrade(database_url)

    _alembic(database_url, command.downgrade, "base")

    assert not OUR_TABLES & _table_names(database_url)
    assert migrations.current(database_url) is None


def _as_utc(value: datetime | str) -> datetime:
    """A timestamp read back with raw SQL: text on SQLite, an aware datetime on Postgres."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def test_runs_from_before_work_distribution_are_carried_over(database_url: str) -> None:
    """0003 adds NOT NULL columns to `runs`: existing rows are filled in and keep their foreign key."""
    _alembic(database_url, command.upgrade, "0002")
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    engine = _engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO threads"
                    " (thread_id, status, metadata, config, interrupts, created_at, updated_at)"
                    " VALUES ('t1', 'idle', '{}', '{}', '{}', :at, :at)"
                ),
                {"at": created},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO runs (run_id, thread_id, assistant_id, status, metadata, kwargs,"
                    " multitask_strategy, created_at, updated_at)"
                    " VALUES ('r1', 't1', 'a1', 'success', '{}', '{}', 'reject', :at, :at)"
                ),
                {"at": created},
            )
    finally:
        engine.dispose()

    migrations.upgrade(database_url)

    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT available_at, attempt, owner FROM runs")).one()
        foreign_keys = sa.inspect(engine).get_foreign_keys("runs")
    finally:
        engine.dispose()
    assert _as_utc(row.available_at) == created
    assert (row.attempt, row.owner) == (1, None)
    assert [(fk["referred_table"], fk["options"].get("ondelete")) for fk in foreign_keys] == [
        ("threads", "CASCADE")
    ]


def test_database_migrated_by_a_newer_aegra_is_refused(database_url: str) -> None:
    migrations.upgrade(database_url)
    engine = _engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    finally:
        engine.dispose()

    with pytest.raises(DatabaseError) as excinfo:
        migrations.upgrade(database_url)
    assert "newer Aegra" in (excinfo.value.hint or "")


_MIGRATOR = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from aegra_server.migrations import upgrade

    url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    ready.touch()
    while not go.exists():
        time.sleep(0.005)
    print(upgrade(url))
    """
)


def test_concurrent_migrators_are_serialised(database_url: str, tmp_path: Path) -> None:
    """Several server processes starting at once against one fresh database all succeed, and migrate once."""
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATOR, database_url, str(flag), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    try:
        # Release them together only once all have imported everything, so the upgrades really overlap.
        deadline = time.monotonic() + 60
        while not all(flag.exists() for flag in ready):
            assert time.monotonic() < deadline, "migrator processes did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        go.touch()
        results = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()

    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert out.strip() == migrations.head()
    assert _version_rows(database_url) == [migrations.head()]
    assert OUR_TABLES <= _table_names(database_url)


# SQLite -------------------------------------------------------------------------------------------------


def test_sqlite_upgrade_creates_folder_and_uses_wal(sqlite_url: str) -> None:
    path = Path(parse_database_url(sqlite_url).sqlite_path)
    assert not path.parent.exists()

    migrations.upgrade(sqlite_url)

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_switch_to_wal_waits_for_a_writer_holding_the_file(sqlite_url: str) -> None:
    """Another process writing while a migrator switches the file to WAL: SQLite refuses the switch at once
    (no busy handler, lest both wait on each other); the migrator waits for the writer and goes on.
    Two migrators switching a fresh file together meet the same (seen in CI)."""
    path = Path(parse_database_url(sqlite_url).sqlite_path)
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE other_tool (a)")
    holding = threading.Event()

    def writer() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO other_tool VALUES (1)")
        holding.set()
        time.sleep(0.5)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        assert migrations.upgrade(sqlite_url) == migrations.head()
    finally:
        thread.join()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT a FROM other_tool").fetchall() == [(1,)]


def test_sqlite_current_creates_no_file(sqlite_url: str) -> None:
    path = Path(parse_database_url(sqlite_url).sqlite_path)

    assert migrations.current(sqlite_url) is None
    assert not path.exists() and not path.parent.exists()


def test_sqlite_relative_path_is_relative_to_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)

    migrations.upgrade("sqlite:///.aegra/aegra.db")

    assert (tmp_path / ".aegra" / "aegra.db").is_file()
    assert migrations.current("sqlite:///.aegra/aegra.db") == migrations.head()


def test_sqlite_in_memory() -> None:
    assert migrations.upgrade("sqlite:///:memory:") == migrations.head()
    assert migrations.current("sqlite:///:memory:") is None


def test_sqlite_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")

    with pytest.raises(DatabaseError) as excinfo:
        migrations.upgrade(f"sqlite:///{tmp_path / 'a-file' / 'sub' / 'aegra.db'}")
    assert "a-file" in excinfo.value.message
    assert excinfo.value.hint


# Postgres -----------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_json_columns_are_jsonb_on_postgres(postgres_url: str) -> None:
    migrations.upgrade(postgres_url)
    engine = _engine(postgres_url)
    try:
        columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("threads")}
    finally:
        engine.dispose()
    assert isinstance(columns["metadata"], postgresql.JSONB)
    assert isinstance(columns["created_at"], sa.DateTime) and columns["created_at"].timezone


@pytest.mark.postgres
def test_upgrade_waits_for_the_advisory_lock(postgres_url: str) -> None:
    conninfo = parse_database_url(postgres_url).conninfo
    outcome: dict[str, object] = {}

    def migrate() -> None:
        try:
            outcome["revision"] = migrations.upgrade(postgres_url)
        except Exception as exc:  # surfaced by the assertion below
            outcome["error"] = exc

    with psycopg.connect(conninfo, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (migrations.MIGRATION_LOCK_KEY,))
        migrator = threading.Thread(target=migrate, daemon=True)
        migrator.start()
        migrator.join(timeout=1.5)
        assert migrator.is_alive(), f"upgrade did not wait for the lock: {outcome}"
        assert migrations.current(postgres_url) is None
        holder.execute("SELECT pg_advisory_unlock(%s)", (migrations.MIGRATION_LOCK_KEY,))
        migrator.join(timeout=30)

    assert outcome == {"revision": migrations.head()}


@pytest.mark.postgres
def test_lock_is_released_after_upgrade(postgres_url: str) -> None:
    migrations.upgrade(postgres_url)

    with psycopg.connect(parse_database_url(postgres_url).conninfo, autocommit=True) as conn:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (migrations.MIGRATION_LOCK_KEY,)).fetchone()
    assert got == (True,)


@pytest.mark.postgres
def test_wrong_password_error_hides_the_password(postgres_server_url: str, postgres_url: str) -> None:
    wrong = "Wr0ng-Secret-Value"
    database = urlsplit(postgres_url).path.lstrip("/")
    with password_role(postgres_server_url, "the-right-password") as role:
        url = url_for_database(postgres_server_url, database, user=role, password=wrong)
        try:
            psycopg.connect(url).close()
        except psycopg.OperationalError:
            pass
        else:
            pytest.skip("this Postgres server does not check passwords")

        for call in (migrations.upgrade, migrations.current):
            with pytest.raises(DatabaseError) as excinfo:
                call(url)
            error = excinfo.value
            assert wrong not in str(error) and wrong not in repr(error)
            assert f"{role}:***@" in error.message
            assert "password" in (error.hint or "")


@pytest.mark.postgres
def test_pgvector_can_be_enabled(postgres_url: str) -> None:
    with psycopg.connect(parse_database_url(postgres_url).conninfo, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        distance = conn.execute("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector").fetchone()
    assert distance == (1.0,)


def test_unreachable_postgres_error_hides_the_password() -> None:
    # Port 1 on localhost: nothing listens there, so the connection is refused at once.
    url = "postgresql://aegra:S3cret-Value@127.0.0.1:1/aegra"

    with pytest.raises(DatabaseError) as excinfo:
        migrations.upgrade(url)

    error = excinfo.value
    assert "S3cret-Value" not in str(error)
    assert "postgresql://aegra:***@127.0.0.1:1/aegra" in error.message
    assert "aegra up" in (error.hint or "")


def test_revisions_form_one_line() -> None:
    """Two revisions with the same parent (e.g. from merged branches) would leave `upgrade` two heads."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(migrations.alembic_config())
    assert scripts.get_heads() == [migrations.head()]
    assert migrations.HEAD == migrations.head(), "set migrations.HEAD to the newest revision in versions/"


def test_a_database_at_head_is_checked_without_alembic(database_url: str) -> None:
    """What every server process does as it starts: one SELECT, not Alembic's import (half a second each)."""
    migrations.upgrade(database_url)
    script = "import sys; from aegra_server import migrations; print(migrations.upgrade(sys.argv[1]), 'alembic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script, database_url], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [migrations.HEAD, "False"], out.stderr
