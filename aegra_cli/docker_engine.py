"""Reaching the Docker engine with the `docker` SDK, and the one message for when it cannot be reached.

Not installed, not running, or not ours to use (the socket's permissions) each get their own line, and every one
names the ways to a Postgres without Docker, since that is usually what the user is after.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aegra_server.errors import AegraError

if TYPE_CHECKING:
    from docker import DockerClient

DEFAULT_HOST = "unix:///var/run/docker.sock"
ENGINE_TIMEOUT_SECONDS = 10
ALTERNATIVES = "run `aegra up --embedded` for Postgres without Docker, or set DATABASE_URL to a Postgres you have"


class DockerUnavailable(AegraError):
    """No Docker engine answers: not installed, not running, or not ours to use.

    `stopped` is true when the engine is simply not there on this machine (not a permission problem, not a remote
    host): then none of its containers runs either, which is all `aegra down` needs to know.
    """

    stopped: bool = False


def engine_unavailable(host: str, reason: str, *, installed: bool) -> DockerUnavailable:
    """The one message for an engine that cannot be used, with what to do instead."""
    if "permission denied" in reason.lower():
        return DockerUnavailable(
            f"permission denied on the Docker engine at {host}",
            f"add your user to the `docker` group and log in again, or {ALTERNATIVES}",
        )
    if not installed:
        error = DockerUnavailable(
            f"Docker is not installed (no engine answers at {host})",
            f"install Docker (https://docs.docker.com/get-docker/), or {ALTERNATIVES}",
        )
    else:
        error = DockerUnavailable(
            f"the Docker engine is not running (nothing answers at {host})",
            f"start Docker (Docker Desktop, or `sudo systemctl start docker`), or {ALTERNATIVES}",
        )
    error.stopped = host.startswith("unix://")  # an unreachable tcp:// host may still run containers
    return error


def connect(environ: Mapping[str, str]) -> DockerClient:
    """A client for the engine that DOCKER_HOST (or the default socket) names, checked to answer."""
    import docker
    from docker.errors import DockerException
    from requests import RequestException

    host = environ.get("DOCKER_HOST") or DEFAULT_HOST
    try:
        client = docker.from_env(environment=dict(environ), timeout=ENGINE_TIMEOUT_SECONDS)
        client.ping()
    except (DockerException, RequestException, OSError) as exc:
        default_socket = DEFAULT_HOST.removeprefix("unix://")
        installed = any((shutil.which("docker"), shutil.which("dockerd"), os.path.exists(default_socket)))
        raise engine_unavailable(host, str(exc), installed=installed) from None
    return client
