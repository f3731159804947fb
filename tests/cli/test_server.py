"""What `aegra dev` / `aegra serve` would hand to uvicorn, compared with golden values; and the port check."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from aegra_server.errors import AegraError

from aegra_cli.project import resolve_project
from aegra_cli.server import (
    Launch,
    ensure_port_free,
    metrics_of_all_workers,
    port_claimed,
    server_env,
    urls,
    uvicorn_kwargs,
)


@pytest.fixture
def resolved(make_project, tmp_path: Path):
    config = make_project(config={"graphs": {"agent": "./graph.py:graph"}, "dependencies": [".", "../shared"]})
    (tmp_path / "shared").mkdir()
    return resolve_project(environ={}, cwd=config.parent)


def test_dev_kwargs(resolved) -> None:
    root = resolved.root
    assert uvicorn_kwargs(Launch(resolved, "127.0.0.1", 2026, reload=True, dev=True)) == {
        "app": "aegra_server.app:app_from_env",
        "factory": True,
        "host": "127.0.0.1",
        "port": 2026,
        "reload": True,
        "lifespan": "on",
        "access_log": False,
        "reload_dirs": [str(root), str(root.parent / "shared")],
        "reload_includes": ["*.py", "aegra.json", "langgraph.json", ".env"],
        "timeout_graceful_shutdown": 3,
    }


def test_dev_watches_a_renamed_config_and_env_file_and_graphs_outside_the_project(make_project, tmp_path: Path) -> None:
    outside = tmp_path / "lib"
    outside.mkdir()
    (outside / "other.py").write_text("")
    config = make_project(
        config={"graphs": {"agent": "./graph.py:graph", "other": "../lib/other.py:graph"}, "env": "./dev.env"},
        name="my-config.json",
    )
    (config.parent / "dev.env").write_text("")
    (config.parent / ".venv").mkdir()
    project = resolve_project(config=config, environ={}, cwd=config.parent)
    kwargs = uvicorn_kwargs(Launch(project, "127.0.0.1", 2026, reload=True, dev=True))
    assert kwargs["reload_dirs"] == [str(project.root), str(outside)]
    assert {"my-config.json", "dev.env"} <= set(kwargs["reload_includes"])
    assert kwargs["reload_excludes"] == [str(project.root / ".venv")]  # pip installs there must not reload


def test_dev_without_reload_kwargs(resolved) -> None:
    assert uvicorn_kwargs(Launch(resolved, "127.0.0.1", 2030, reload=False, dev=True)) == {
        "app": "aegra_server.app:app_from_env",
        "factory": True,
        "host": "127.0.0.1",
        "port": 2030,
        "reload": False,
        "lifespan": "on",
        "access_log": False,
        "timeout_graceful_shutdown": 3,
    }


def test_serve_kwargs(resolved) -> None:
    assert uvicorn_kwargs(Launch(resolved, "0.0.0.0", 2026, reload=False, dev=False)) == {
        "app": "aegra_server.app:app_from_env",
        "factory": True,
        "host": "0.0.0.0",
        "port": 2026,
        "reload": False,
        "lifespan": "on",
        "access_log": False,
        "timeout_graceful_shutdown": 30.0,  # the runs' grace period: open requests cannot hold a SIGTERM longer
    }


def test_the_grace_period_is_read_as_the_server_reads_it(resolved, monkeypatch) -> None:
    serve = Launch(resolved, "0.0.0.0", 2026, reload=False, dev=False)
    (resolved.root / ".env").write_text("AEGRA_SHUTDOWN_GRACE_SECONDS=7\n")
    from_file = resolve_project(environ={}, cwd=resolved.root)
    assert uvicorn_kwargs(Launch(from_file, "0.0.0.0", 2026, reload=False, dev=False))["timeout_graceful_shutdown"] == 7
    monkeypatch.setenv("AEGRA_SHUTDOWN_GRACE_SECONDS", "2.5")  # the real environment wins
    assert uvicorn_kwargs(Launch(from_file, "0.0.0.0", 2026, reload=False, dev=False))["timeout_graceful_shutdown"] == 2.5
    monkeypatch.setenv("AEGRA_SHUTDOWN_GRACE_SECONDS", "soon")  # the server will refuse it in one line
    assert uvicorn_kwargs(serve)["timeout_graceful_shutdown"] == 30


def test_server_env_dev_and_serve(resolved) -> None:
    root = resolved.root
    expected = {
        "AEGRA_CONFIG": str(root / "aegra.json"),
        "DATABASE_URL": f"sqlite:///{root / '.aegra' / 'aegra.db'}",
        "AEGRA_ENV_FILE": str(root / ".env"),
        "AEGRA_WORKERS": None,
    }
    assert server_env(Launch(resolved, "127.0.0.1", 2026, reload=True, dev=True)) == {**expected, "AEGRA_DEV": "1"}
    # serve removes AEGRA_DEV, so a leftover value in the shell cannot switch dev behaviour on.
    assert server_env(Launch(resolved, "0.0.0.0", 2026, reload=False, dev=False)) == {**expected, "AEGRA_DEV": None}


def test_serve_with_workers(resolved) -> None:
    launch = Launch(resolved, "0.0.0.0", 2026, reload=False, dev=False, workers=3)
    assert uvicorn_kwargs(launch)["workers"] == 3
    # every worker learns that others share its database (on SQLite they then signal each other)
    assert server_env(launch)["AEGRA_WORKERS"] == "3"


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("127.0.0.1", "http://127.0.0.1:2026"),
        ("0.0.0.0", "http://127.0.0.1:2026"),
        ("::1", "http://[::1]:2026"),
        ("myhost", "http://myhost:2026"),
    ],
)
def test_urls(host: str, base: str) -> None:
    assert urls(host, 2026) == {
        "API": base,
        "Docs": f"{base}/docs",
        "Studio": f"https://smith.langchain.com/studio/?baseUrl={base}",
    }


def test_port_in_use_is_one_line_with_the_next_port() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(AegraError) as caught:
            ensure_port_free("127.0.0.1", port)
    assert caught.value.message == f"port {port} is in use"
    assert caught.value.hint == f"--port {port + 1} or stop the other process"


def test_free_port_passes() -> None:
    with socket.socket() as finder:
        finder.bind(("127.0.0.1", 0))
        port = finder.getsockname()[1]
    ensure_port_free("127.0.0.1", port)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="the port's lock file is for POSIX systems")
def test_a_claimed_port_is_refused_to_a_second_server_on_any_host_until_released() -> None:
    with socket.socket() as finder:
        finder.bind(("127.0.0.1", 0))
        port = finder.getsockname()[1]
    with port_claimed("127.0.0.1", port):  # not listening yet: the check that the port is free passes
        for host in ("127.0.0.1", "0.0.0.0"):
            with pytest.raises(AegraError) as caught, port_claimed(host, port):
                pass
            assert caught.value.message == f"port {port} is in use"
    with port_claimed("0.0.0.0", port):
        pass


def test_a_port_is_claimed_without_its_lock_file_when_the_temporary_directory_is_unusable(tmp_path, monkeypatch) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_folder))
    with socket.socket() as finder:
        finder.bind(("127.0.0.1", 0))
        port = finder.getsockname()[1]
    with port_claimed("127.0.0.1", port):
        pass


def test_unknown_host_is_an_error() -> None:
    with pytest.raises(AegraError, match="cannot listen on no-such-host.invalid:2026"):
        ensure_port_free("no-such-host.invalid", 2026)


def test_a_server_with_workers_removes_the_metrics_folders_killed_servers_left(monkeypatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = Path(tempfile.mkdtemp(prefix=f"aegra-metrics-{int(ended.stdout)}-"))  # its server was SIGKILLed
    (left / "counter_1.db").write_bytes(b"")
    alive = Path(tempfile.mkdtemp(prefix=f"aegra-metrics-{os.getppid()}-"))  # a server still running
    try:
        with metrics_of_all_workers(2):
            mine = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
            assert mine.name.startswith(f"aegra-metrics-{os.getpid()}-") and mine.is_dir()
            assert not left.exists()
            assert alive.is_dir()
        assert not mine.exists() and "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    finally:
        for folder in (left, alive):
            if folder.exists():
                for file in folder.iterdir():
                    file.unlink()
                folder.rmdir()

