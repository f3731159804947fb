"""A Postgres container per project, driven through the Docker Engine API with the `docker` SDK (no CLI).

One project (the folder of its aegra.json) has one container and one named volume, both labelled with the
project's key, so `aegra up` finds whatever an earlier `up` made, in any state, and `aegra down` touches only
those. The port is published on 127.0.0.1 only. The superuser password is chosen once, when the volume is made,
and kept as a label of the volume: Postgres writes it into the data at its first start, so it has to live as
long as the data does, not as long as a container.

The names, labels, port choice and password rule are plain functions (tested without an engine); the rest talks
to the engine, reached through docker_engine.py.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from aegra_server.errors import AegraError
from aegra_server.observability.redact import hide_secret

from aegra_cli.docker_engine import ALTERNATIVES, connect

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

DEFAULT_IMAGE = "pgvector/pgvector:pg17"
IMAGE_ENV = "AEGRA_POSTGRES_IMAGE"
PASSWORD_ENV = "POSTGRES_PASSWORD"
DEFAULT_PORT = 5432
PORT_TRIES = 100
HOST = "127.0.0.1"
USER = "aegra"
DATABASE = "aegra"
DATA_PATH = "/var/lib/postgresql/data"
STOP_TIMEOUT_SECONDS = 30
# How often `aegra up` makes its container again when the port it chose was taken before the container started.
PORT_RACE_TRIES = 3

LABEL_PROJECT = "dev.aegra.project"
LABEL_FOLDER = "dev.aegra.folder"
LABEL_ROLE = "dev.aegra.role"
LABEL_PASSWORD = "dev.aegra.postgres-password"
LABEL_IMAGE = "dev.aegra.postgres-image"
ROLE = "postgres"


class PortTaken(AegraError):
    """The container's port was taken when it started."""


class Reporter(Protocol):
    """Where progress goes: one line per step, and the layers of an image being pulled."""

    def step(self, message: str) -> None: ...

    def download(self, layer: str, status: str, current: int | None, total: int | None) -> None: ...


@dataclass(frozen=True)
class Names:
    key: str
    container: str
    volume: str

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL_PROJECT: self.key, LABEL_ROLE: ROLE}

    @property
    def label_filters(self) -> list[str]:
        return [f"{name}={value}" for name, value in self.labels.items()]


@dataclass(frozen=True)
class Started:
    url: str  # carries the password
    container: str
    volume: str
    image: str
    port: int
    action: str  # "created", "started" or "running"

    @property
    def description(self) -> str:
        return f"container {self.container} ({self.image}) on {HOST}:{self.port}, data in volume {self.volume}"


# ---------------------------------------------------------------------------------------------------------
# Pure rules


def project_names(folder: Path) -> Names:
    """Names for the project in `folder` (absolute): readable, and unique by a hash of the full path."""
    folder = folder.resolve()
    key = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    slug = re.sub(r"[^a-z0-9]+", "-", folder.name.lower()).strip("-")[:30].strip("-") or "project"
    base = f"aegra-{slug}-{key[:8]}"
    return Names(key=key, container=f"{base}-postgres", volume=f"{base}-pgdata")


def database_url(password: str, port: int, *, host: str = HOST, user: str = USER, database: str = DATABASE) -> str:
    return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{quote(database, safe='')}"


def choose_image(flag: str | None, environ: Mapping[str, str], current: str | None = None) -> tuple[str, bool]:
    """--image, then $AEGRA_POSTGRES_IMAGE, then the image the project's Postgres already uses, then the default;
    and whether it was asked for (only then is a container on another image recreated)."""
    chosen = flag or environ.get(IMAGE_ENV)
    return (chosen, True) if chosen else (current or DEFAULT_IMAGE, False)


def choose_port(requested: int | None, in_use: Callable[[int], bool], start: int = DEFAULT_PORT) -> int:
    """`requested` if it is free (an error if not); otherwise `start` or the next free port after it."""
    if requested is not None:
        if in_use(requested):
            raise AegraError(
                f"port {requested} on {HOST} is in use",
                "pass another --port, or leave --port out to take the first free one from 5432",
            )
        return requested
    for port in range(start, min(start + PORT_TRIES, 65536)):
        if not in_use(port):
            return port
    raise AegraError(f"no free port on {HOST} from {start} to {start + PORT_TRIES - 1}", "pass a free --port")


def choose_password(given: str | None, stored: str | None, *, volume_exists: bool, volume: str) -> str:
    """The password the volume was made with wins; a new volume takes `given`, or a generated one."""
    start_afresh = "or `aegra down --volumes` to start afresh (this deletes the data)"
    if stored is not None:
        if given and given != stored:
            raise AegraError(
                f"the data volume {volume} was created with another password than {PASSWORD_ENV}",
                f"unset {PASSWORD_ENV} to use the volume's own, {start_afresh}",
            )
        return stored
    if volume_exists and not given:
        raise AegraError(
            f"the data volume {volume} was not created by `aegra up`, so its password is unknown",
            f"set {PASSWORD_ENV} to its password, {start_afresh}",
        )
    return given or secrets.token_urlsafe(24)


def bind_in_use(port: int, host: str = HOST) -> bool:
    """Whether something listens on host:port (including 0.0.0.0:port), found by trying to bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


# ---------------------------------------------------------------------------------------------------------
# The engine


def up(
    folder: Path,
    *,
    port: int | None,
    image: str | None,
    password: str | None,
    environ: Mapping[str, str],
    report: Reporter,
) -> Started:
    """Make the project's container run: reuse a running one, start a stopped one, or create one."""
    from docker.errors import APIError

    client = connect(environ)
    try:
        return _up(client, folder, port=port, image=image, password=password, environ=environ, report=report)
    except APIError as exc:
        raise AegraError(f"the Docker engine refused: {hide_secret(_explain(exc), password)}",
                         "see `docker ps -a` and the engine's log") from None
    finally:
        client.close()


def _up(
    client: DockerClient,
    folder: Path,
    *,
    port: int | None,
    image: str | None,
    password: str | None,
    environ: Mapping[str, str],
    report: Reporter,
) -> Started:
    names = project_names(folder)
    volume = _volume_labels(client, names)
    password = choose_password(
        password, (volume or {}).get(LABEL_PASSWORD), volume_exists=volume is not None, volume=names.volume
    )
    container = _find(client, names)
    current = _image_name(container) if container is not None else (volume or {}).get(LABEL_IMAGE)
    image, explicit_image = choose_image(image, environ, current)
    change = _change(container, port, image if explicit_image else None) if container is not None else None
    if change:
        # Whatever can fail is checked before the old container goes: the image, and a requested port.
        ensure_image(client, image, report)
        if port is not None:
            choose_port(port, _in_use_checker(client))
        report.step(f"recreating {names.container} {change} (the data volume is kept)")
        _remove(container)
        container = None
    if container is None:
        action = "created"
        container = _create_started(client, names, folder, image=image, port=port, password=password,
                                    new_volume=volume is None, report=report)
    elif container.status != "running":
        action = "started"
        report.step(f"starting {names.container}")
        _start(container, names, password)
    else:
        action = "running"
    container.reload()
    published = _published_port(container)
    if published is None:
        raise AegraError(f"{names.container} publishes no port for Postgres",
                         "`aegra down` and `aegra up` again to recreate it (the data is kept)")
    return Started(url=database_url(password, published), container=names.container, volume=names.volume,
                   image=_image_name(container), port=published, action=action)


def _create_started(client: DockerClient, names: Names, folder: Path, *, image: str, port: int | None, password: str,
                    new_volume: bool, report: Reporter) -> Container:
    """Create the container and start it. A port chosen here (no --port) may be taken between the check and the
    start, by another `aegra up` doing the same: then the container is made again on the next free port."""
    attempt = 1
    while True:
        container = _create(client, names, folder, image=image, port=port, password=password,
                            new_volume=new_volume, report=report)
        try:
            _start(container, names, password)
            return container
        except PortTaken:
            if port is not None or attempt == PORT_RACE_TRIES:
                raise
        _remove(container)
        new_volume = False  # the first attempt made it
        attempt += 1


def _create(
    client: DockerClient,
    names: Names,
    folder: Path,
    *,
    image: str,
    port: int | None,
    password: str,
    new_volume: bool,
    report: Reporter,
) -> Container:
    ensure_image(client, image, report)
    chosen = choose_port(port, _in_use_checker(client))
    if new_volume:
        # The password and image live with the data: a later container on this volume must use the same.
        client.volumes.create(names.volume, labels={**names.labels, LABEL_PASSWORD: password, LABEL_IMAGE: image})
    report.step(f"creating {names.container} on {HOST}:{chosen}")
    return client.containers.create(
        image,
        name=names.container,
        labels={**names.labels, LABEL_FOLDER: str(folder.resolve())},
        environment={"POSTGRES_USER": USER, "POSTGRES_DB": DATABASE, PASSWORD_ENV: password},
        ports={"5432/tcp": (HOST, chosen)},
        volumes={names.volume: {"bind": DATA_PATH, "mode": "rw"}},
        # No restart policy: a crash-looping Postgres would look "restarting" rather than failed to the wait
        # after `up`, and a stopped container is what `aegra up` starts anyway.
    )


def failure(folder: Path, environ: Mapping[str, str]) -> str | None:
    """Why the project's container is not running (with the end of its log), or None while it runs."""
    client = connect(environ)
    try:
        container = _find(client, project_names(folder))
        if container is None:
            return "its container was removed"
        if container.status in ("created", "running", "restarting"):
            return None
        log = container.logs(tail=15).decode(errors="replace").strip()
        log = hide_secret(log, (_volume_labels(client, project_names(folder)) or {}).get(LABEL_PASSWORD))
        code = container.attrs.get("State", {}).get("ExitCode")
        return f"its container stopped (exit code {code}); its log ends:\n{log}"
    finally:
        client.close()


def down(folder: Path, *, volumes: bool, environ: Mapping[str, str]) -> list[str]:
    """Stop and remove the project's container (and with `volumes`, its data); what was done, one line each."""
    from docker.errors import APIError, NotFound

    client = connect(environ)
    done = []
    try:
        names = project_names(folder)
        for container in client.containers.list(all=True, filters={"label": names.label_filters}):
            _remove(container)
            done.append(f"removed container {container.name}")
        if volumes:
            try:
                client.volumes.get(names.volume).remove()
                done.append(f"removed volume {names.volume} (the data is gone)")
            except NotFound:
                pass
        elif done:
            done.append(f"kept volume {names.volume}: `aegra up` brings the data back")
        return done
    except APIError as exc:  # e.g. the volume is used by a container that is not ours
        raise AegraError(f"the Docker engine refused: {_explain(exc)}", "see `docker ps -a`") from None
    finally:
        client.close()


def _find(client: DockerClient, names: Names) -> Container | None:
    found = client.containers.list(all=True, filters={"label": names.label_filters})
    return found[0] if found else None


def _volume_labels(client: DockerClient, names: Names) -> dict[str, str] | None:
    """The labels of the project's volume, or None when it has no volume."""
    from docker.errors import NotFound

    try:
        return client.volumes.get(names.volume).attrs.get("Labels") or {}
    except NotFound:
        return None


def _change(container: Container, port: int | None, image: str | None) -> str | None:
    # A container's port binding and image are fixed at creation; asking for others means a new container.
    if port is not None and _published_port(container) != port:
        return f"on port {port}"
    if image is not None and _image_name(container) != image:
        return f"from {image}"
    return None


def _published_port(container: Container) -> int | None:
    bindings = container.attrs.get("HostConfig", {}).get("PortBindings") or {}
    for binding in bindings.get("5432/tcp") or []:
        if (binding.get("HostPort") or "").isdigit():
            return int(binding["HostPort"])
    return None


def _image_name(container: Container) -> str:
    return container.attrs.get("Config", {}).get("Image", "")


# Containers whose published ports are taken, or about to be: one created by another `aegra up` that has not
# started it yet binds nothing on the host, and would be refused the port at its start.
_HOLDING_PORTS = {"created", "running", "restarting", "paused"}


def _in_use_checker(client: DockerClient) -> Callable[[int], bool]:
    # Ports other containers publish count too: without the userland proxy nothing is bound on the host.
    holding = [c for c in client.containers.list(all=True) if c.status in _HOLDING_PORTS]
    published = set(_published_ports(holding))
    return lambda port: port in published or bind_in_use(port)


def _published_ports(containers: Iterable[Container]) -> Iterable[int]:
    for container in containers:
        for bindings in (container.attrs.get("HostConfig", {}).get("PortBindings") or {}).values():
            for binding in bindings or []:
                if (binding.get("HostPort") or "").isdigit():
                    yield int(binding["HostPort"])


def _start(container: Container, names: Names, password: str) -> None:
    from docker.errors import APIError

    try:
        container.start()
    except APIError as exc:
        reason = hide_secret(_explain(exc), password)
        if "address already in use" in reason or "port is already allocated" in reason:
            raise PortTaken(
                f"cannot start {names.container}: port {_published_port(container)} on {HOST} is taken",
                "stop what uses it, or `aegra up --port N` to move the container (the data is kept)",
            ) from None
        raise AegraError(f"cannot start {names.container}: {reason}", f"see `docker logs {names.container}`") from None


def _remove(container: Container) -> None:
    from docker.errors import NotFound

    try:
        if container.status == "running":
            container.stop(timeout=STOP_TIMEOUT_SECONDS)
        container.remove(force=True)
    except NotFound:
        pass  # removed meanwhile: what we wanted


def ensure_image(client: DockerClient, image: str, report: Reporter) -> None:
    """Pull `image` unless the engine has it, reporting each layer's progress from the engine's event stream."""
    from docker.errors import APIError, ImageNotFound

    hint = (
        "check the network and the image name, or pass a local image with --image (or AEGRA_POSTGRES_IMAGE); "
        f"or {ALTERNATIVES}"
    )
    try:
        client.images.get(image)
        return
    except ImageNotFound:
        pass
    except APIError as exc:  # not even a valid reference
        raise AegraError(f"{image!r} is not an image name: {_explain(exc)}", hint) from None
    report.step(f"pulling {image}")
    try:
        for event in client.api.pull(image, stream=True, decode=True):
            if event.get("error"):
                raise AegraError(f"cannot pull {image}: {event['error']}", hint)
            if event.get("id"):
                detail = event.get("progressDetail") or {}
                report.download(event["id"], event.get("status", ""), detail.get("current"), detail.get("total"))
    except APIError as exc:
        raise AegraError(f"cannot pull {image}: {_explain(exc)}", hint) from None


def _explain(exc: Any) -> str:
    return " ".join(str(getattr(exc, "explanation", None) or exc).split())
