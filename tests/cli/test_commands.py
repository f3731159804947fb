"""The commands through Typer's CliRunner, in real projects under tmp_path."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aegra_cli.app import app


def assert_clean_failure(result, *fragments: str) -> None:
    """Failed with an exit code and `error:` lines on stderr, not with an exception or a traceback."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert "error:" in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_version(runner: CliRunner) -> None:
    from importlib.metadata import version

    for args in (["version"], ["--version"], ["-V"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == f"aegra {version('aegra')}"
    short_help = runner.invoke(app, ["-h"])
    assert short_help.exit_code == 0 and "migrate" in short_help.stdout


def test_no_arguments_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 2
    for command in ("dev", "serve", "migrate", "version"):
        assert command in result.output


def test_bad_usage_exits_2(runner: CliRunner, project: Path, monkeypatch) -> None:
    monkeypatch.chdir(project)
    assert runner.invoke(app, ["dev", "--port", "0"]).exit_code == 2


# Each error below is raised before the server would start, so no test here ever runs uvicorn.


def test_no_config(runner: CliRunner, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["dev"])
    assert_clean_failure(
        result, f"no aegra.json or langgraph.json in {tmp_path} or any folder above it", "hint: run `aegra init`"
    )
    assert result.exit_code == 1


def test_config_flag_that_does_not_exist(runner: CliRunner, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_clean_failure(runner.invoke(app, ["dev", "--config", "nope.json"]), "nope.json does not exist")


def test_invalid_json(runner: CliRunner, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "aegra.json").write_text('{"graphs": {"agent": "./graph.py:graph",}}')
    monkeypatch.chdir(tmp_path)
    assert_clean_failure(runner.invoke(app, ["dev"]), "invalid JSON at line 1", "hint: fix the JSON syntax")


def test_files_that_are_not_utf8_or_a_folder_given_as_config(runner: CliRunner, make_project, monkeypatch) -> None:
    config = make_project(config={"graphs": {"agent": "./graph.py:graph"}})
    monkeypatch.chdir(config.parent)
    (config.parent / ".env").write_bytes(b"MY_SECRET=caf\xe9\n")  # Latin-1
    assert_clean_failure(runner.invoke(app, ["migrate"]), ".env is not UTF-8 text", "hint: save it as UTF-8")
    (config.parent / ".env").unlink()
    config.write_bytes(b'{"graphs": {"agent": "./gr\xe4ph.py:graph"}}')
    assert_clean_failure(runner.invoke(app, ["migrate"]), "aegra.json is not UTF-8 text")
    config.write_bytes(b'\xef\xbb\xbf{"graphs": {"agent": "./graph.py:graph"}}')  # a byte-order mark is fine
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    assert_clean_failure(runner.invoke(app, ["migrate", "--config", "."]), "is a folder, not a config file")


def test_store_embeddings_that_cannot_load_stop_dev_before_it_starts(runner: CliRunner, make_project, monkeypatch) -> None:
    store = {"index": {"dims": 3, "embed": "./nope.py:embed"}}
    config = make_project(config={"graphs": {"agent": "./graph.py:graph"}, "store": store})
    monkeypatch.chdir(config.parent)
    result = runner.invoke(app, ["dev", "--no-reload"])
    assert_clean_failure(result, "store.index.embed ./nope.py:embed", "does not exist")
    assert "Studio" not in result.stdout  # refused before the panel, not after it


def test_config_errors_speak_the_users_words(runner: CliRunner, make_project, monkeypatch) -> None:
    config = make_project(config={"graphs": {}})
    monkeypatch.chdir(config.parent)
    result = runner.invoke(app, ["migrate"])
    assert_clean_failure(result, "aegra.json: graphs: needs at least one graph")
    assert "Value error" not in result.stderr
    config.write_text('{"graphs": {"agent": "./graph.py:graph"}, "env": 5}')
    result = runner.invoke(app, ["migrate"])
    assert_clean_failure(result, "aegra.json: env: ")
    assert "dict[" not in result.stderr  # pydantic's name for the union member it tried


def test_unknown_key_suggests_the_right_one(runner: CliRunner, make_project, monkeypatch) -> None:
    config = make_project(config={"graphs": {"agent": "./graph.py:graph"}, "dependancies": ["."]})
    monkeypatch.chdir(config.parent)
    assert_clean_failure(runner.invoke(app, ["dev"]), "unknown key 'dependancies'", "did you mean 'dependencies'?")


def test_encryption_is_refused_not_ignored(runner: CliRunner, make_project, monkeypatch) -> None:
    config = make_project(config={"graphs": {"agent": "./graph.py:graph"}, "encryption": {"path": "./enc.py:enc"}})
    monkeypatch.chdir(config.parent)
    assert_clean_failure(
        runner.invoke(app, ["dev"]), "encryption: custom encryption at rest is not supported", "hint: remove the key"
    )


def test_ui_entries_are_validated(runner: CliRunner, make_project, monkeypatch) -> None:
    config = make_project(config={"graphs": {"agent": "./graph.py:graph"}, "ui": ["./ui.tsx"]})
    monkeypatch.chdir(config.parent)
    assert_clean_failure(runner.invoke(app, ["dev"]), "ui: Input should be a valid dictionary")
    config.write_text('{"graphs": {"agent": "./graph.py:graph"}, "ui": {"agent": "./ui.tsx"}, "ui_config": {"x": 1}}')
    assert_clean_failure(runner.invoke(app, ["dev"]), "ui_config.x: Extra inputs are not permitted")


def test_webhook_settings_are_checked_before_the_server_starts(runner: CliRunner, make_project, monkeypatch) -> None:
    monkeypatch.delenv("LG_WEBHOOK_TOKEN", raising=False)
    header = {"Authorization": "Bearer ${{ env.LG_WEBHOOK_TOKEN }}"}
    config = make_project(config={"graphs": {"agent": "./graph.py:graph"}, "webhooks": {"headers": header}})
    monkeypatch.chdir(config.parent)
    result = runner.invoke(app, ["dev", "--port", str(_free_port())])
    assert_clean_failure(result, "environment variable LG_WEBHOOK_TOKEN, which is not set", "hint: set LG_WEBHOOK_TOKEN")
    config.write_text(json.dumps({"graphs": {"agent": "./graph.py:graph"}, "webhooks": {"headers": {"X": "${{ env.HOME }}"}}}))
    assert_clean_failure(runner.invoke(app, ["dev"]), "'HOME' must start with env_prefix 'LG_WEBHOOK_'")
    config.write_text(json.dumps({"graphs": {"agent": "./graph.py:graph"}, "webhooks": {"url": {"allowed_domains": ["a*.b"]}}}))
    assert_clean_failure(runner.invoke(app, ["dev"]), "'a*.b': a host, or '*.' followed by a domain")


def test_graph_that_fails_to_import(runner: CliRunner, project: Path, monkeypatch) -> None:
    (project / "graph.py").write_text("import aegra_no_such_module_xyz\n")
    monkeypatch.chdir(project)
    result = runner.invoke(app, ["dev", "--port", str(_free_port())])
    assert_clean_failure(result, "agent", "aegra_no_such_module_xyz")


def test_graph_that_raises_on_import_names_the_line(runner: CliRunner, project: Path, monkeypatch) -> None:
    # The error is one line with no traceback, so it must say where: the project's own line, not a library's.
    (project / "settings_reader.py").write_text("import json\n\n\ndef setting():\n    return json.loads('{')\n")
    (project / "graph.py").write_text("from settings_reader import setting\n\nSETTING = setting()\n")
    monkeypatch.chdir(project)
    result = runner.invoke(app, ["dev", "--port", str(_free_port())])
    assert_clean_failure(result, "JSONDecodeError", f"at {project / 'settings_reader.py'}, line 5; fix it there")


def test_port_in_use(runner: CliRunner, project: Path, monkeypatch) -> None:
    monkeypatch.chdir(project)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = runner.invoke(app, ["dev", "--port", str(port)])
    assert_clean_failure(result, f"port {port} is in use", f"hint: --port {port + 1} or stop the other process")


def test_workers_on_an_in_memory_database(runner: CliRunner, project: Path, monkeypatch) -> None:
    monkeypatch.chdir(project)
    result = runner.invoke(
        app, ["serve", "--port", str(_free_port()), "--workers", "2", "--database-url", "sqlite:///:memory:"]
    )
    assert_clean_failure(
        result, "an in-memory SQLite database cannot be shared by several workers", "hint: use a SQLite file"
    )


def test_a_sqlite_file_another_server_is_serving(runner: CliRunner, project: Path, monkeypatch) -> None:
    from aegra_server.storage.sqlite_sharing import serving
    from aegra_server.storage.urls import parse_database_url

    monkeypatch.chdir(project)
    database = project / "shared.db"
    with serving(parse_database_url(f"sqlite:///{database}"), workers=1):  # what a running server holds
        result = runner.invoke(app, ["serve", "--port", str(_free_port()), "--database-url", f"sqlite:///{database}"])
    assert_clean_failure(
        result,
        f"another Aegra server is already serving {database}",
        "hint: stop it, or serve the file from one `aegra serve --workers N`",
    )


def test_script_prints_errors_without_traceback(tmp_path: Path) -> None:
    """The real entry point, in a fresh interpreter: message, hint, exit code 1."""
    done = subprocess.run(
        [sys.executable, "-m", "aegra_cli", "migrate"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: no aegra.json or langgraph.json in"), done.stderr
    assert "Traceback" not in done.stderr


def test_migrate_creates_sqlite_and_is_idempotent(runner: CliRunner, project: Path, monkeypatch) -> None:
    monkeypatch.chdir(project)
    database = project / ".aegra" / "aegra.db"

    status = runner.invoke(app, ["migrate", "--status"])
    assert status.exit_code == 0, status.output
    assert "not migrated" in status.stdout
    assert not database.exists()  # --status changes nothing

    first = runner.invoke(app, ["migrate"])
    assert first.exit_code == 0, first.output
    assert database.is_file()
    revision = re.search(r"at revision (\S+)", first.stdout).group(1)
    assert revision != "None"
    assert f"sqlite:///{database}" in first.stdout

    again = runner.invoke(app, ["migrate"])
    assert again.exit_code == 0, again.output
    assert f"at revision {revision}" in again.stdout

    status = runner.invoke(app, ["migrate", "--status"])
    assert status.exit_code == 0, status.output
    assert f"revision {revision}" in status.stdout
    assert not (project / ".env").exists()  # never written


def test_migrate_uses_the_flag_and_redacts_passwords(
    runner: CliRunner, project: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(project)
    elsewhere = tmp_path / "elsewhere.db"
    result = runner.invoke(app, ["migrate", "--database-url", f"sqlite:///{elsewhere}"])
    assert result.exit_code == 0, result.output
    assert elsewhere.is_file()
    assert not (project / ".aegra").exists()

    # An unreachable Postgres fails as a clean error, and its password never reaches the terminal.
    result = runner.invoke(app, ["migrate", "--database-url", "postgresql://aegra:s3cret@127.0.0.1:1/aegra"])
    assert_clean_failure(result)
    assert "s3cret" not in result.output


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "sqlite:///"])
@pytest.mark.parametrize("args", [[], ["--status"]])
def test_migrate_of_an_in_memory_database_says_there_is_nothing_to_migrate(
    runner: CliRunner, project: Path, monkeypatch, url: str, args: list[str]
) -> None:
    monkeypatch.chdir(project)
    result = runner.invoke(app, ["migrate", *args, "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "nothing to migrate, the server sets up an in-memory database" in result.stdout
    assert "None" not in result.stdout
    assert not (project / ".aegra").exists() and not (project / ":memory:").exists()  # no file made


def test_migrate_reads_database_url_from_dotenv(
    runner: CliRunner, project: Path, tmp_path: Path, monkeypatch
) -> None:
    target = tmp_path / "from-dotenv.db"
    (project / ".env").write_text(f"DATABASE_URL=sqlite:///{target}\n")
    monkeypatch.chdir(project)
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert target.is_file()


def _free_port() -> int:
    with socket.socket() as finder:
        finder.bind(("127.0.0.1", 0))
        return finder.getsockname()[1]
