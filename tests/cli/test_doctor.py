"""`aegra doctor` through CliRunner on real projects in tmp_path (conftest's make_project), one line per check."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aegra_cli import scaffold, self_wheel
from aegra_cli.app import app
from aegra_cli.doctor import check_python
from tests.postgres import fresh_database, password_role, postgres_server, url_for_database

# Nothing listens on port 1, so a connection there is refused at once.
REFUSED = "postgresql://aegra:Sup3r-Secret@127.0.0.1:1/aegra"


def doctor(runner: CliRunner, project: Path, monkeypatch, *args: str):
    monkeypatch.chdir(project)
    return runner.invoke(app, ["doctor", *args])


def line(result, name: str) -> str:
    """The one line of the check called `name`."""
    found = [text for text in result.stdout.splitlines() if text[2:].startswith(f"{name}:")]
    assert len(found) == 1, result.stdout
    return found[0]


@pytest.fixture(autouse=True)
def no_docker(monkeypatch) -> None:
    # The same answer with or without an engine on the machine running the tests.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")


def test_a_good_project(runner: CliRunner, project: Path, monkeypatch) -> None:
    result = doctor(runner, project, monkeypatch)
    assert result.exit_code == 0, result.output
    assert line(result, "python").startswith("✓ python: 3.")
    assert line(result, "config") == f"✓ config: {project / 'aegra.json'} (1 graph)"
    assert line(result, "graph agent") == "✓ graph agent: ./graph.py:graph loads"
    database = project / ".aegra" / "aegra.db"
    assert line(result, "database") == f"✓ database: sqlite:///{database} (created when the server first starts)"
    assert not database.exists(), "doctor must not create the database"
    # Docker is a warning, never a failure: SQLite needs none.
    assert line(result, "docker").startswith("! docker: ")
    assert "nothing answers at unix:///nonexistent/docker.sock" in line(result, "docker")
    assert "only `aegra up` and compose.yaml need it" in line(result, "docker")


def test_every_broken_graph_gets_its_own_line(runner: CliRunner, make_project, tmp_path: Path, monkeypatch) -> None:
    config = make_project(config={"graphs": {
        "agent": "./graph.py:graph", "typo": "./graph.py:grpah", "broken": "./broken.py:graph",
    }})
    (config.parent / "broken.py").write_text("import not_a_module_anywhere\n")
    result = doctor(runner, config.parent, monkeypatch)
    assert result.exit_code == 1
    assert line(result, "graph agent").startswith("✓")
    assert line(result, "graph typo").startswith("✗ graph typo: graph 'typo' (./graph.py:grpah) failed to load")
    assert "did you mean ./graph.py:graph?" in line(result, "graph typo")
    broken = line(result, "graph broken")
    assert broken.startswith("✗ graph broken:") and "not_a_module_anywhere" in broken
    assert line(result, "database").startswith("✓")  # the checks after a failure still run


def test_a_postgres_that_refuses_fails_without_showing_the_password(
    runner: CliRunner, project: Path, monkeypatch
) -> None:
    result = doctor(runner, project, monkeypatch, "--database-url", REFUSED)
    assert result.exit_code == 1
    assert "Sup3r-Secret" not in result.output
    database = line(result, "database")
    assert database.startswith("✗ database: cannot connect to postgresql://aegra:***@127.0.0.1:1/aegra")
    assert "`aegra up` runs one in Docker, `aegra up --embedded` without" in database
    # A local Postgres that does not answer may be a stopped container: the Docker line says so, as a warning.
    assert "aegra up --embedded" in line(result, "docker")  # the engine's own hint, since it may be the cause


def test_the_url_can_come_from_dotenv(runner: CliRunner, project: Path, monkeypatch) -> None:
    (project / ".env").write_text(f"DATABASE_URL={REFUSED}\n")
    result = doctor(runner, project, monkeypatch)
    assert result.exit_code == 1
    assert "Sup3r-Secret" not in result.output
    assert line(result, "database").startswith("✗ database: cannot connect to postgresql://aegra:***@")


def test_an_unsupported_database_url(runner: CliRunner, project: Path, monkeypatch) -> None:
    result = doctor(runner, project, monkeypatch, "--database-url", "mysql://root:hunter2@localhost/app")
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    assert line(result, "database").startswith("✗ database: Unsupported database URL scheme 'mysql'")


def test_a_file_that_is_not_a_sqlite_database(runner: CliRunner, project: Path, monkeypatch, tmp_path) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_text("these are my notes, not a database " * 40)
    result = doctor(runner, project, monkeypatch, "--database-url", f"sqlite:///{bogus}")
    assert result.exit_code == 1
    assert line(result, "database").startswith(f"✗ database: sqlite:///{bogus}: file is not a database")


def test_an_existing_sqlite_database_shows_its_schema(runner: CliRunner, project: Path, monkeypatch) -> None:
    sqlite3.connect(project / "empty.db").close()
    result = doctor(runner, project, monkeypatch, "--database-url", f"sqlite:///{project / 'empty.db'}")
    assert result.exit_code == 0, result.output
    assert line(result, "database").endswith("(not migrated yet: the server migrates it on start)")


def test_no_config(runner: CliRunner, tmp_path: Path, monkeypatch) -> None:
    result = doctor(runner, tmp_path, monkeypatch)
    assert result.exit_code == 1
    assert line(result, "config").startswith(f"✗ config: no aegra.json or langgraph.json in {tmp_path}")
    assert "run `aegra init`" in line(result, "config")
    assert line(result, "graphs").startswith("- graphs: not checked")
    assert line(result, "database").startswith("- database: not checked")


def test_an_invalid_config(runner: CliRunner, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "aegra.json").write_text(json.dumps({"graphs": {}}))
    result = doctor(runner, tmp_path, monkeypatch)
    assert result.exit_code == 1
    assert line(result, "config").startswith("✗ config:")


def test_python_version_check() -> None:
    assert check_python((3, 11, 2)).status == "ok"
    too_old = check_python((3, 10, 14))
    assert too_old.status == "fail" and too_old.message == "3.10.14 is too old: aegra needs 3.11 or newer"


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    with postgres_server() as server_url:
        yield server_url


def test_a_reachable_postgres(runner: CliRunner, project: Path, monkeypatch, postgres: str) -> None:
    with fresh_database(postgres) as url:
        result = doctor(runner, project, monkeypatch, "--database-url", url)
    assert result.exit_code == 0, result.output
    assert "(PostgreSQL " in line(result, "database") and "not migrated yet" in line(result, "database")


def test_a_wrong_postgres_password(runner: CliRunner, project: Path, monkeypatch, postgres: str) -> None:
    with password_role(postgres, "right-password") as role:
        url = url_for_database(postgres, "postgres", user=role, password="Wr0ng-Passw0rd")
        result = doctor(runner, project, monkeypatch, "--database-url", url)
    assert result.exit_code == 1
    assert "Wr0ng-Passw0rd" not in result.output
    database = line(result, "database")
    assert database.startswith(f"✗ database: cannot connect to postgresql://{role}:***@")
    assert "password authentication failed" in database


# ---------------------------------------------------------------------------------------------------------
# Which aegra the project installs


def test_a_project_without_pyproject_gets_no_aegra_line(runner: CliRunner, project: Path, monkeypatch) -> None:
    result = doctor(runner, project, monkeypatch)
    assert "aegra:" not in result.stdout


def test_a_generated_project_installs_the_running_aegra(runner: CliRunner, tmp_path: Path, monkeypatch) -> None:
    made = scaffold.init(tmp_path / "made", scaffold.find_template("chatbot"), store=tmp_path / "store").directory
    result = doctor(runner, made, monkeypatch)
    wheel = f"vendor/{self_wheel.wheel_name(version('aegra'))}"
    assert line(result, "aegra") == f"✓ aegra: {version('aegra')} runs, and the project installs the same from {wheel}"


@pytest.mark.parametrize("dependency, files, expected", [
    ("aegra>=0.1", [], "pyproject.toml depends on `aegra` from the package index, where that name is another project"),
    ("aegra @ {root:uri}/vendor/aegra-0.0.9-py3-none-any.whl", ["vendor/aegra-0.0.9-py3-none-any.whl"],
     "runs, but the project installs aegra 0.0.9 (vendor/aegra-0.0.9-py3-none-any.whl)"),
    ("aegra @ {root:uri}/vendor/aegra-0.0.9-py3-none-any.whl", [],
     "pyproject.toml installs aegra from vendor/aegra-0.0.9-py3-none-any.whl, which is missing"),
])
def test_a_project_installing_another_aegra_is_warned(
    runner: CliRunner, project: Path, monkeypatch, dependency: str, files: list[str], expected: str
) -> None:
    (project / "pyproject.toml").write_text(f'[project]\nname = "p"\ndependencies = [{json.dumps(dependency)}]\n')
    for name in files:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_bytes(b"")
    result = doctor(runner, project, monkeypatch)
    assert result.exit_code == 0, result.output  # a warning: the running aegra serves the project regardless
    assert line(result, "aegra").startswith("! aegra: ") and expected in line(result, "aegra")
    assert "run `aegra update`" in result.stdout


def test_ui_components_need_a_bundler(runner: CliRunner, project: Path, monkeypatch, tmp_path: Path) -> None:
    config = json.loads((project / "aegra.json").read_text())
    (project / "aegra.json").write_text(json.dumps({**config, "ui": {"agent": "./ui.tsx"}}))
    monkeypatch.setenv("PATH", str(tmp_path / "no-node-here"))  # no npx
    result = doctor(runner, project, monkeypatch)
    assert result.exit_code == 1
    assert line(result, "ui").startswith("✗ ui: aegra.json has `ui`: bundling its components needs Node.js")
    (project / "node_modules" / ".bin").mkdir(parents=True)
    (project / "node_modules" / ".bin" / "langgraphjs-ui").write_text("")  # the project's own copy
    result = doctor(runner, project, monkeypatch)
    assert line(result, "ui") == "✓ ui: 1 graph(s) with components, bundled from the project's node_modules"


def test_a_store_index_whose_embeddings_cannot_load(runner: CliRunner, make_project, monkeypatch) -> None:
    store = {"index": {"dims": 3, "embed": "./nope.py:embed"}}
    project = make_project(config={"graphs": {"agent": "./graph.py:graph"}, "store": store}).parent
    result = doctor(runner, project, monkeypatch)
    assert result.exit_code == 1
    assert line(result, "graph agent").startswith("✓")  # the store is its own line, not the graph's
    assert line(result, "store").startswith("✗ store: store.index.embed ./nope.py:embed:")
    assert "does not exist" in line(result, "store")
