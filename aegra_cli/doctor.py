"""`aegra doctor`: what a project needs in order to run, checked one line at a time.

Checks are yielded as they finish, so a slow one (a Postgres host that does not answer) never hides the lines
before it, and none raises, so one broken thing never hides the others. Python, the config, every graph and the
database are required. Docker is a warning only: `aegra dev` and `aegra serve` never need it (SQLite, a Postgres
reached over the network, or `aegra up --embedded` work without it); only containers do (`aegra up`,
compose.yaml). When the database is a local Postgres that does not answer, the Docker line says if that may be why.
Which aegra the project's pyproject.toml installs (its venv, its image) is a warning too: the running aegra serves
the project whatever that file says.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aegra_server.errors import AegraError, ConfigError
from aegra_server.storage.urls import DatabaseUrl, parse_database_url
from packaging.requirements import InvalidRequirement, Requirement

from aegra_cli import database, docker_engine, self_wheel
from aegra_cli.docker_engine import DockerUnavailable
from aegra_server.observability.redact import hide_secret
from aegra_cli.project import Project, resolve_project
from aegra_cli.server import check_graphs, check_store_embeddings

MIN_PYTHON = (3, 11)
POSTGRES_TIMEOUT_SECONDS = 3
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "")


@dataclass(frozen=True)
class Check:
    status: str  # "ok", "fail" (exit 1), "warn" (does not fail) or "skip" (could not run)
    name: str
    message: str
    hint: str | None = None


def run_checks(
    config: Path | None = None,
    database_url: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[Check]:
    environ = os.environ if environ is None else environ
    yield check_python(sys.version_info)
    try:
        project = resolve_project(config, database_url, environ=environ, cwd=cwd)
    except AegraError as exc:
        yield Check("fail", "config", exc.message, exc.hint)
        yield Check("skip", "graphs", "not checked: there is no valid config")
        yield Check("skip", "database", "not checked: there is no valid config")
        yield check_docker(environ, needed=False)
        return
    count = len(project.config.graphs)
    yield Check("ok", "config", f"{project.config_path} ({count} graph{'s' if count != 1 else ''})")
    aegra = check_aegra_dependency(project.config_path.parent, self_wheel.running_version())
    if aegra is not None:
        yield aegra
    yield from check_each_graph(project)
    if project.config.store is not None and project.config.store.index is not None:
        yield check_store_index(project)
    if project.config.ui:
        yield check_ui_bundler(project)
    db = check_database(project.database_url)
    yield db
    yield check_docker(environ, needed=db.status == "fail" and _is_local_postgres(project.database_url))


def check_python(version_info: Any) -> Check:
    version = ".".join(str(part) for part in version_info[:3])
    if tuple(version_info[:2]) >= MIN_PYTHON:
        return Check("ok", "python", f"{version} ({sys.executable})")
    return Check(
        "fail", "python", f"{version} is too old: aegra needs {'.'.join(map(str, MIN_PYTHON))} or newer",
        "install a newer Python and reinstall aegra with it",
    )


_VENDORED = "{root:uri}/"  # how a generated pyproject.toml points at the wheel in its folder


def check_aegra_dependency(folder: Path, running: str) -> Check | None:
    """Which aegra the project's pyproject.toml installs (its venv, its Docker image) next to the one running.

    None when there is no pyproject.toml naming aegra: the project then leaves installing aegra to the user.
    """
    try:
        dependencies = tomllib.loads((folder / "pyproject.toml").read_text())["project"]["dependencies"]
        requirements = [Requirement(dependency) for dependency in dependencies]
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, InvalidRequirement):
        return None
    aegra = next((requirement for requirement in requirements if requirement.name == "aegra"), None)
    if aegra is None:
        return None
    update = "run `aegra update`: it puts this aegra's wheel in vendor/ and makes pyproject.toml depend on it"
    if aegra.url is None:
        return Check("warn", "aegra", "pyproject.toml depends on `aegra` from the package index, where that name "
                     "is another project", update)
    if not aegra.url.startswith(_VENDORED):
        return Check("ok", "aegra", f"{running} runs; the project installs aegra from {aegra.url}")
    wheel = aegra.url.removeprefix(_VENDORED)
    if not (folder / wheel).is_file():
        return Check("warn", "aegra", f"pyproject.toml installs aegra from {wheel}, which is missing", update)
    vendored = Path(wheel).name.split("-")[1]
    if vendored != running:
        return Check("warn", "aegra", f"{running} runs, but the project installs aegra {vendored} ({wheel})", update)
    return Check("ok", "aegra", f"{running} runs, and the project installs the same from {wheel}")


def check_each_graph(project: Project) -> Iterator[Check]:
    """Import each graph on its own, so every broken one gets its own line (the server stops at the first)."""
    for graph_id, spec in project.config.graphs.items():
        single = replace(project, config=project.config.model_copy(update={"graphs": {graph_id: spec}}))
        try:
            check_graphs(single)
        except AegraError as exc:
            yield Check("fail", f"graph {graph_id}", exc.message, exc.hint)
        except Exception as exc:  # a graph module can raise anything; doctor still reports the rest
            yield Check("fail", f"graph {graph_id}", f"{spec.path}: {type(exc).__name__}: {exc}",
                        "run the module with python to see the traceback")
        else:
            yield Check("ok", f"graph {graph_id}", f"{spec.path} loads")


# ---------------------------------------------------------------------------------------------------------
# The database


def check_store_index(project: Project) -> Check:
    """`store.index.embed`: the server resolves it at start and stops if it cannot."""
    try:
        check_store_embeddings(project)
    except ConfigError as exc:
        return Check("fail", "store", exc.message, exc.hint)
    return Check("ok", "store", f"semantic search with {project.config.store.index.embed}")


def check_ui_bundler(project: Project) -> Check:
    """aegra.json's `ui` needs a bundler (aegra_server.ui_bundles): dev and serve stop without one."""
    from aegra_server import ui_bundles

    try:
        command = ui_bundles.bundler_command(project.config)
    except ConfigError as exc:
        return Check("fail", "ui", exc.message, exc.hint)
    where = "the project's node_modules" if len(command) == 1 else f"npx ({ui_bundles.BUNDLER_PACKAGE})"
    return Check("ok", "ui", f"{len(project.config.ui)} graph(s) with components, bundled from {where}")


def check_database(url: str) -> Check:
    try:
        parsed = parse_database_url(url)
    except AegraError as exc:
        return Check("fail", "database", exc.message, exc.hint)
    if parsed.dialect == "sqlite":
        return _check_sqlite(url, parsed)
    return _check_postgres(url, parsed)


def _check_sqlite(url: str, parsed: DatabaseUrl) -> Check:
    shown = parsed.redacted
    if parsed.is_memory:
        return Check("ok", "database", f"{shown} ({database.IN_MEMORY})")
    path = Path(parsed.sqlite_path or "")
    if not path.exists():
        folder = next(parent for parent in path.absolute().parents if parent.exists())
        if not os.access(folder, os.W_OK):
            return Check("fail", "database", f"{shown}: cannot be created, {folder} is not writable",
                         "set DATABASE_URL (or pass --database-url) to a writable place")
        return Check("ok", "database", f"{shown} (created when the server first starts)")
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        return Check("fail", "database", f"{shown}: {exc}", "is it a SQLite database? Move it away to start afresh")
    # SQLite writes its journal (WAL) next to the file, so the folder must be writable too.
    if not (os.access(path, os.W_OK) and os.access(path.absolute().parent, os.W_OK)):
        return Check("fail", "database", f"{shown} is read-only for this user", f"make {path} and its folder writable")
    return Check("ok", "database", f"{shown} ({_schema_status(url)})")


def _check_postgres(url: str, parsed: DatabaseUrl) -> Check:
    import psycopg

    shown = parsed.redacted
    try:
        with psycopg.connect(parsed.conninfo, connect_timeout=POSTGRES_TIMEOUT_SECONDS) as connection:
            connection.execute("SELECT 1")
            server = connection.info.server_version
    except psycopg.Error as exc:
        reason = hide_secret(" ".join(str(exc).split()), parsed.password)  # libpq does not echo it; be sure
        if _is_local_postgres(url):
            hint = "start it: `aegra up` runs one in Docker, `aegra up --embedded` without; or fix DATABASE_URL"
        else:
            hint = "check the host, port, user and password in DATABASE_URL, and that this machine may connect"
        return Check("fail", "database", f"cannot connect to {shown}: {reason}", hint)
    major, minor = divmod(server, 10000)
    return Check("ok", "database", f"{shown} (PostgreSQL {major}.{minor}; {_schema_status(url)})")


def _schema_status(url: str) -> str:
    try:
        current = database.revision(url)
    except Exception as exc:  # reported, not raised: the connection itself worked
        return f"schema revision unknown: {type(exc).__name__}"
    return f"schema at revision {current}" if current else "not migrated yet: the server migrates it on start"


def _is_local_postgres(url: str) -> bool:
    """A Postgres on this machine: localhost, or a Unix socket (no host, or ?host=/path)."""
    try:
        parsed = parse_database_url(url)
    except AegraError:
        return False
    if parsed.dialect != "postgresql":
        return False
    authority = parsed.location.split("/", 1)[0].rpartition("@")[2]
    host = authority.rsplit(":", 1)[0] if not authority.startswith("[") else authority.split("]")[0][1:]
    return host in _LOCAL_HOSTS


# ---------------------------------------------------------------------------------------------------------
# Docker


def check_docker(environ: Mapping[str, str], *, needed: bool) -> Check:
    """Whether a Docker engine answers. `needed`: the database is a local Postgres that did not answer."""
    try:
        client = docker_engine.connect(environ)
    except DockerUnavailable as exc:
        hint = exc.hint if needed else "only `aegra up` and compose.yaml need it; aegra dev and serve do not"
        return Check("warn", "docker", exc.message, hint)
    try:
        engine = client.version().get("Version", "?")
    except Exception:  # it answered the ping; the version is only a detail
        engine = "?"
    finally:
        client.close()
    return Check("ok", "docker", f"engine {engine} answers")
