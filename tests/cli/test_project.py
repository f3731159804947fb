"""Project resolution: which config, which .env, which database. The environment is passed in, not patched."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from aegra_server.errors import ConfigError
from aegra_server.graphs import check_graphs

from aegra_cli.project import resolve_project
from aegra_cli.server import project_environment


def test_finds_config_upward_from_a_subfolder(project: Path) -> None:
    deep = project / "src" / "agents"
    deep.mkdir(parents=True)
    resolved = resolve_project(environ={}, cwd=deep)
    assert resolved.config_path == project / "aegra.json"
    assert resolved.root == project
    assert list(resolved.config.graphs) == ["agent"]


def test_config_flag_wins_over_env_and_discovery(make_project, tmp_path: Path) -> None:
    here = make_project(tmp_path / "here")
    flagged = make_project(tmp_path / "flagged")
    from_env = make_project(tmp_path / "from-env")
    resolved = resolve_project(flagged, environ={"AEGRA_CONFIG": str(from_env)}, cwd=here.parent)
    assert resolved.config_path == flagged


def test_relative_config_flag_is_relative_to_cwd(make_project, tmp_path: Path) -> None:
    config = make_project(tmp_path / "elsewhere")
    assert resolve_project(Path("elsewhere/aegra.json"), environ={}, cwd=tmp_path).config_path == config


def test_aegra_config_env_wins_over_discovery(make_project, tmp_path: Path) -> None:
    here = make_project(tmp_path / "here")
    from_env = make_project(tmp_path / "from-env")
    resolved = resolve_project(environ={"AEGRA_CONFIG": str(from_env)}, cwd=here.parent)
    assert resolved.config_path == from_env


def test_langgraph_json_is_the_fallback(make_project, tmp_path: Path) -> None:
    config = make_project(tmp_path / "lg", name="langgraph.json")
    assert resolve_project(environ={}, cwd=config.parent).config_path == config


def test_aegra_json_is_preferred_over_langgraph_json(make_project, tmp_path: Path) -> None:
    make_project(tmp_path / "both", name="langgraph.json")
    config = make_project(tmp_path / "both", name="aegra.json")
    assert resolve_project(environ={}, cwd=config.parent).config_path == config


def test_no_config_names_the_folder_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_project(environ={}, cwd=tmp_path)
    assert caught.value.message == f"no aegra.json or langgraph.json in {tmp_path} or any folder above it"
    assert caught.value.hint == "run `aegra init` or pass --config"


def test_dotenv_is_read_and_the_real_environment_wins(project: Path) -> None:
    (project / ".env").write_text("GREETING=from-file\nDATABASE_URL=sqlite:///from-dotenv.db\n")
    resolved = resolve_project(environ={"DATABASE_URL": "sqlite:///from-env.db"}, cwd=project)
    assert resolved.env_file == project / ".env"
    assert resolved.env_values["GREETING"] == "from-file"
    assert resolved.database_url == f"sqlite:///{project.resolve()}/from-env.db"


def test_inline_env_is_read_and_dotenv_wins_over_it(make_project, tmp_path: Path) -> None:
    config = make_project(
        config={"graphs": {"agent": "./graph.py:graph"}, "env": {"A": "inline", "B": "inline"}}
    )
    (config.parent / ".env").write_text("B=dotenv\n")
    resolved = resolve_project(environ={}, cwd=config.parent)
    assert resolved.env_values == {"A": "inline", "B": "dotenv"}


def test_env_as_a_path_names_the_env_file(make_project) -> None:
    config = make_project(config={"graphs": {"agent": "./graph.py:graph"}, "env": "config/dev.env"})
    (config.parent / "config").mkdir()
    (config.parent / "config" / "dev.env").write_text("DATABASE_URL=sqlite:///named.db\n")
    resolved = resolve_project(environ={}, cwd=config.parent)
    assert resolved.env_file == config.parent / "config" / "dev.env"
    assert resolved.database_url == f"sqlite:///{config.parent.resolve()}/named.db"  # from the project, not the file


def test_env_path_that_does_not_exist_is_an_error(make_project) -> None:
    config = make_project(config={"graphs": {"agent": "./graph.py:graph"}, "env": "missing.env"})
    with pytest.raises(ConfigError, match="missing.env does not exist"):
        resolve_project(environ={}, cwd=config.parent)


DOTENV_URL = "DATABASE_URL=sqlite:///dotenv.db"
POSTGRES_PARTS = {"POSTGRES_HOST": "db", "POSTGRES_USER": "u", "POSTGRES_PASSWORD": "p", "POSTGRES_DB": "d"}


@pytest.mark.parametrize(
    ("flag", "environ", "dotenv", "expected"),
    [
        ("sqlite:///flag.db", {"DATABASE_URL": "sqlite:///env.db"}, DOTENV_URL, "flag.db"),
        (None, {"DATABASE_URL": "sqlite:///env.db"}, DOTENV_URL, "env.db"),
        (None, POSTGRES_PARTS, DOTENV_URL, "dotenv.db"),
        (None, POSTGRES_PARTS, "", "postgresql://u:p@db:5432/d"),
        (None, {}, "POSTGRES_HOST=db\nPOSTGRES_DB=d", "postgresql://postgres@db:5432/d"),
        (None, {}, "", None),  # the default: SQLite inside the project
    ],
    ids=["flag", "env", "dotenv", "postgres-parts", "postgres-parts-in-dotenv", "default"],
)
def test_database_url_precedence(project: Path, flag, environ, dotenv, expected) -> None:
    (project / ".env").write_text(dotenv)
    resolved = resolve_project(database_url=flag, environ=environ, cwd=project)
    if expected is None:  # the default: SQLite inside the project
        expected = f"sqlite:///{project / '.aegra' / 'aegra.db'}"
    elif expected.endswith(".db"):  # a relative SQLite path, made absolute
        expected = f"sqlite:///{project.resolve() / expected}"
    assert resolved.database_url == expected


def test_relative_sqlite_paths_start_at_the_project_unless_given_on_the_command_line(project: Path) -> None:
    (project / ".env").write_text("DATABASE_URL=sqlite:///data/app.db?timeout=5\n")
    below = project / "src" / "pkg"
    below.mkdir(parents=True)
    # From a subfolder, .env's database is still the project's, not a new one beside the shell.
    assert resolve_project(environ={}, cwd=below).database_url == f"sqlite:///{project.resolve()}/data/app.db?timeout=5"
    flagged = resolve_project(database_url="sqlite:///here.db", environ={}, cwd=below)
    assert flagged.database_url == f"sqlite:///{below.resolve()}/here.db"
    home = resolve_project(database_url="sqlite:///~/x.db", environ={}, cwd=below)
    assert home.database_url == f"sqlite:///{Path.home()}/x.db"  # not a folder named "~"
    for kept in ("sqlite:////abs/x.db", "sqlite:///:memory:", "sqlite://", "postgresql://u@h/d"):
        assert resolve_project(database_url=kept, environ={}, cwd=below).database_url == kept


def test_project_environment_is_applied_for_a_check_and_undone(make_project, monkeypatch) -> None:
    config = make_project(config={"graphs": {"agent": "./graph.py:graph"}, "dependencies": [".", "./lib", "somepkg"]})
    (config.parent / "lib").mkdir()
    (config.parent / ".env").write_text("AEGRA_TEST_FROM_FILE=file\nAEGRA_TEST_REAL=file\n")
    monkeypatch.setenv("AEGRA_TEST_REAL", "real")
    resolved = resolve_project(cwd=config.parent)
    assert resolved.dependency_paths == [config.parent, config.parent / "lib"]  # "somepkg" is a package name

    with project_environment(resolved):
        assert os.environ["AEGRA_TEST_FROM_FILE"] == "file"
        assert os.environ["AEGRA_TEST_REAL"] == "real"
        check_graphs(resolved.config)  # puts the dependency folders on sys.path, as the server would
        assert str(config.parent / "lib") in sys.path

    # Left behind, file values would pose as the real environment in the server and defeat .env reloads.
    assert "AEGRA_TEST_FROM_FILE" not in os.environ
    assert os.environ["AEGRA_TEST_REAL"] == "real"
    assert str(config.parent / "lib") not in sys.path
