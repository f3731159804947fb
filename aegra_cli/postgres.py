"""A Postgres for the project, made ready to use: running (in Docker, or embedded), answering, migrated.

`aegra up`, `aegra dev --postgres` and `aegra down` call these; how each kind is run lives in docker_postgres.py
and embedded.py. "Ready" means Postgres accepted a real connection (a container's state says nothing about
that: the official image restarts Postgres once while it initialises). The URLs returned carry the password;
the CLI prints one only where the user asked for it (`aegra up`). Everything else, errors included, shows the
URL redacted and the password scrubbed from any message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aegra_server.errors import AegraError, DatabaseError
from aegra_server.storage.urls import parse_database_url

from aegra_cli import database, docker_postgres, embedded
from aegra_cli.docker_engine import DockerUnavailable
from aegra_cli.docker_postgres import Reporter
from aegra_server.observability.redact import hide_secret
from aegra_cli.project import Project

READY_TIMEOUT_SECONDS = 120.0
CONNECT_TIMEOUT_SECONDS = 3
POLL_SECONDS = 0.25
_ACTIONS = {"created": "new", "started": "started again", "running": "already running"}


@dataclass(frozen=True)
class Ready:
    url: str  # carries the password
    description: str  # where it runs; no password
    revision: str | None


def up_docker(
    project: Project,
    *,
    port: int | None = None,
    image: str | None = None,
    environ: Mapping[str, str],
    report: Reporter,
) -> Ready:
    """The project's Postgres container, running, answering and migrated."""
    # POSTGRES_PASSWORD counts from the project's .env too, as every other setting does; the environment wins.
    given = {**project.env_values, **environ}.get(docker_postgres.PASSWORD_ENV) or None
    started = docker_postgres.up(project.root, port=port, image=image, password=given, environ=environ, report=report)
    if started.action != "running":
        report.step("waiting for Postgres to accept connections")
    wait_until_ready(
        started.url,
        failure=lambda: docker_postgres.failure(project.root, environ),
        auth_hint=f"the data was initialised with another password: unset {docker_postgres.PASSWORD_ENV}, "
        "or `aegra down --volumes` to start afresh (this deletes the data)",
    )
    description = f"{started.description} ({_ACTIONS[started.action]})"
    return Ready(started.url, description, database.migrate(started.url))


def up_embedded(project: Project) -> Ready:
    url = embedded.up(project.root)
    wait_until_ready(url)
    return Ready(url, f"embedded, data in {embedded.data_dir(project.root)}", database.migrate(url))


def down(project: Project, *, volumes: bool, environ: Mapping[str, str]) -> list[str]:
    """Stop what `up` started for the project, embedded and Docker alike; what was done, one line each.

    Without an engine this is not an error when the project has an embedded Postgres (someone who never used
    Docker should not be told to start it to stop something else), nor when the local engine is simply stopped
    and only stopping was asked: its containers are not running either. Deleting a volume does need the engine.
    """
    done = embedded.down(project.root, remove_data=volumes)
    try:
        return (done or []) + docker_postgres.down(project.root, volumes=volumes, environ=environ)
    except DockerUnavailable as exc:
        if done is None and (volumes or not exc.stopped):
            raise
        return done or []


def wait_until_ready(
    url: str,
    timeout: float = READY_TIMEOUT_SECONDS,
    *,
    failure: Callable[[], str | None] = lambda: None,
    auth_hint: str = "check the user name and password in the URL",
) -> None:
    """Connect until Postgres accepts; `failure()` says when waiting is pointless (e.g. the container died).

    Raises DatabaseError with the URL redacted and the password scrubbed from the driver's message.
    """
    import psycopg

    parsed = parse_database_url(url)
    if parsed.conninfo is None:
        raise AegraError(f"{parsed.redacted} is not a Postgres URL")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(parsed.conninfo, connect_timeout=CONNECT_TIMEOUT_SECONDS):
                return
        except psycopg.Error as exc:
            reason = hide_secret(" ".join(str(exc).split()), parsed.password)
            if "password authentication failed" in reason:
                raise DatabaseError(f"Postgres at {parsed.redacted} refused the password", auth_hint) from None
            if isinstance(exc, psycopg.ProgrammingError):  # a malformed URL: waiting will not fix it
                raise DatabaseError(f"cannot connect to {parsed.redacted}: {reason}", auth_hint) from None
        problem = failure()
        if problem:
            raise DatabaseError(f"Postgres at {parsed.redacted} will not answer: {problem}",
                                "fix the cause, then `aegra up` again")
        if time.monotonic() >= deadline:
            raise DatabaseError(
                f"Postgres at {parsed.redacted} did not accept connections within {timeout:g} s: {reason}",
                "see the Postgres log (`docker logs <container>`, or .aegra/postgres/log when embedded)",
            )
        time.sleep(POLL_SECONDS)
