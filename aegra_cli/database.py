"""Schema migrations as the CLI sees them: bring a database to head, or read where it stands.

The migration code itself lives in aegra_server (server start-up runs the same code); it is imported inside
the functions because it pulls in SQLAlchemy and Alembic, which `aegra --help` should not pay for.
"""

from __future__ import annotations

from pathlib import Path


# An in-memory database has no schema to keep: the server creates it at each start.
IN_MEMORY = "in memory: gone when the server stops"


def in_memory(database_url: str) -> bool:
    from aegra_server.storage.urls import parse_database_url

    return parse_database_url(database_url).is_memory


def schema_for_start(database_url: str) -> str:
    """Migrate before serving; how the database stands, for the start-up panel."""
    return IN_MEMORY if in_memory(database_url) else f"revision {migrate(database_url)}"


def migrate(database_url: str) -> str | None:
    """Upgrade to the latest revision (a no-op when already there) and return that revision."""
    from aegra_server import migrations

    migrations.upgrade(database_url)
    return migrations.current(database_url)


def revision(database_url: str) -> str | None:
    """The current revision, or None when the database has never been migrated. Changes nothing."""
    if _missing_sqlite_file(database_url):
        # Opening it would create an empty file; "not migrated" is the answer without touching the disk.
        return None
    from aegra_server import migrations

    return migrations.current(database_url)


def _missing_sqlite_file(database_url: str) -> bool:
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return False
    return not Path(url.database).exists()
