"""`aegra up` / `aegra down` against a real Docker engine: containers, volumes, ports, passwords, data."""

from __future__ import annotations

import re
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from typer.testing import CliRunner

from aegra_cli.app import app
from aegra_cli.docker_postgres import (
    LABEL_FOLDER,
    LABEL_PROJECT,
    _published_ports,
    bind_in_use,
    choose_port,
    database_url,
    project_names,
)
from aegra_server import migrations
from aegra_server.settings import read_env_file

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

GENERATED_URL = re.compile(r"postgresql://aegra:(?P<password>[A-Za-z0-9_-]{32})@127\.0\.0\.1:(?P<port>\d+)/aegra")


def aegra(project: Path, *args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(app, [*args, "--config", str(project / "aegra.json")], env=env)
    assert "Traceback" not in result.output, result.output
    return result


def url_of(result) -> str:
    """The DATABASE_URL `aegra up` printed, after checking it succeeded."""
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("DATABASE_URL="), result.stdout
    return last.removeprefix("DATABASE_URL=")


def without_port(url: str) -> str:
    return re.sub(r":\d+/", ":<port>/", url)


def rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT value FROM kept ORDER BY value").fetchall()


def free_port() -> int:
    with socket.socket() as finder:
        finder.bind(("127.0.0.1", 0))
        return finder.getsockname()[1]


def test_up_down_up_keeps_the_data_until_down_volumes(engine, postgres_image: str, project: Path) -> None:
    names = project_names(project)

    first = aegra(project, "up", "--image", postgres_image)
    url = url_of(first)
    generated = GENERATED_URL.fullmatch(url)
    assert generated, url
    password, port = generated["password"], int(generated["port"])
    assert "(new)" in first.stdout
    assert password not in first.stderr and password not in first.stdout.replace(url, "")
    assert not (project / ".env").exists()  # only with --write-env

    container = engine.containers.get(names.container)
    assert container.labels[LABEL_PROJECT] == names.key
    assert container.labels[LABEL_FOLDER] == str(project.resolve())
    bindings = container.attrs["HostConfig"]["PortBindings"]
    assert bindings == {"5432/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}  # never 0.0.0.0
    assert [mount["Name"] for mount in container.attrs["Mounts"]] == [names.volume]

    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (migrations.head(),)
        conn.execute("CREATE TABLE kept (value text)")
        conn.execute("INSERT INTO kept VALUES ('before down')")

    # Again: the running container is reused, and its image is remembered without --image.
    again = aegra(project, "up", "--write-env")
    assert url_of(again) == url
    assert "(already running)" in again.stdout
    assert read_env_file(project / ".env") == {"DATABASE_URL": url}
    assert stat.S_IMODE((project / ".env").stat().st_mode) == 0o600

    down = aegra(project, "down")
    assert down.exit_code == 0, down.output
    assert f"removed container {names.container}" in down.stdout
    assert engine.containers.list(all=True, filters={"label": names.label_filters}) == []
    assert engine.volumes.get(names.volume)
    idle = aegra(project, "down")
    assert idle.exit_code == 0 and "Nothing to stop" in idle.stdout

    # A new container on the kept volume: same password (kept with the volume), same image, same data. The port
    # is chosen afresh (5432 or the next free one), so it differs if something took the old one meanwhile.
    back = aegra(project, "up")
    assert without_port(url_of(back)) == without_port(url)
    url = url_of(back)
    assert "(new)" in back.stdout and f"({postgres_image})" in back.stdout
    assert rows(url) == [("before down",)]

    # A stopped container is started again.
    engine.containers.get(names.container).stop()
    restarted = aegra(project, "up")
    assert url_of(restarted) == url and "(started again)" in restarted.stdout
    assert rows(url) == [("before down",)]

    # POSTGRES_PASSWORD cannot contradict the data; neither password shows.
    refused = aegra(project, "up", env={"POSTGRES_PASSWORD": "not-the-one"})
    assert refused.exit_code == 1
    assert "was created with another password than POSTGRES_PASSWORD" in refused.stderr
    assert "not-the-one" not in refused.output and password not in refused.output

    gone = aegra(project, "down", "--volumes")
    assert gone.exit_code == 0, gone.output
    assert f"removed volume {names.volume} (the data is gone)" in gone.stdout
    assert engine.volumes.list(filters={"name": names.volume}) == []

    fresh = url_of(aegra(project, "up", "--image", postgres_image))
    assert GENERATED_URL.fullmatch(fresh)["password"] != password
    with psycopg.connect(fresh) as conn:
        assert conn.execute("SELECT to_regclass('kept')").fetchone() == (None,)
    assert aegra(project, "down", "--volumes").exit_code == 0


def test_given_password_and_port_and_moving_to_another_port(
    engine, postgres_image: str, make_project: Callable[[str], Path]
) -> None:
    project = make_project("given")
    port = free_port()
    given = "given Pw/with:odd@chars"
    url = url_of(aegra(project, "up", "--image", postgres_image, "--port", str(port), env={"POSTGRES_PASSWORD": given}))
    assert url == database_url(given, port)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (value text)")
        conn.execute("INSERT INTO kept VALUES ('moved')")

    # A port that is taken is refused before anything changes.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = aegra(project, "up", "--port", str(taken.getsockname()[1]))
    assert busy.exit_code == 1 and "is in use" in busy.stderr
    assert rows(url) == [("moved",)]

    # Another port means another container on the same volume; the volume's password is kept.
    other = free_port()
    moved = aegra(project, "up", "--port", str(other))
    assert url_of(moved) == database_url(given, other)
    assert "on port" in moved.stderr and "the data volume is kept" in moved.stderr
    assert rows(database_url(given, other)) == [("moved",)]
    assert given not in moved.stderr


def test_down_touches_only_its_own_project(engine, postgres_image: str, make_project: Callable[[str], Path]) -> None:
    mine, theirs = make_project("mine"), make_project("theirs")
    mine_url = url_of(aegra(mine, "up", "--image", postgres_image))
    theirs_url = url_of(aegra(theirs, "up", "--image", postgres_image))
    assert urlsplit(mine_url).port != urlsplit(theirs_url).port  # the second took the next free port

    assert aegra(mine, "down", "--volumes").exit_code == 0
    assert engine.containers.get(project_names(theirs).container).status == "running"
    with psycopg.connect(theirs_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_up_leaves_alone_the_port_of_a_container_not_started_yet(engine, postgres_image: str, project: Path) -> None:
    # Another `aegra up` at the same moment has created its container on the first free port and not started it:
    # nothing listens there yet, but the port is that container's once it starts (two `aegra up` at once used to
    # pick the same port, and the second failed to start).
    running = set(_published_ports(engine.containers.list()))  # without docker's userland proxy nothing binds them
    first = choose_port(None, lambda port: port in running or bind_in_use(port))
    other = engine.containers.create(postgres_image, ports={"5432/tcp": ("127.0.0.1", first)})
    try:
        assert urlsplit(url_of(aegra(project, "up", "--image", postgres_image))).port != first
    finally:
        other.remove(force=True)


@pytest.mark.parametrize(
    ("image", "error"),
    [
        ("registry.invalid/aegra/none:1", "cannot pull registry.invalid/aegra/none:1: "),  # .invalid never resolves
        ("Not A Name:x:1", "'Not A Name:x:1' is not an image name: "),  # `:x:` printed as is, not as an emoji
    ],
)
def test_an_image_that_cannot_be_had_is_one_error_and_changes_nothing(
    engine, project: Path, image: str, error: str
) -> None:
    failed = aegra(project, "up", "--image", image)
    assert failed.exit_code == 1
    assert failed.stderr.splitlines()[-2].startswith(f"error: {error}"), failed.stderr
    assert "--image" in failed.stderr and "aegra up --embedded" in failed.stderr
    names = project_names(project)
    assert engine.containers.list(all=True, filters={"label": names.label_filters}) == []
    assert engine.volumes.list(filters={"name": names.volume}) == []
