"""`aegra dev --postgres` for real: a subprocess brings the project's Postgres up in Docker and serves runs on it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from langgraph_sdk import get_sync_client
from typer.testing import CliRunner

from aegra_cli.app import app

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

STARTUP_TIMEOUT = 180


def free_port() -> int:
    with socket.socket() as finder:
        finder.bind(("127.0.0.1", 0))
        return finder.getsockname()[1]


def test_dev_postgres_serves_runs_on_the_projects_postgres(postgres_image: str, project: Path) -> None:
    port = free_port()
    log = project.parent / "dev.log"
    env = {**os.environ, "AEGRA_POSTGRES_IMAGE": postgres_image}  # os.environ is already cleaned
    with log.open("wb") as out:
        # Its own session, so stopping it stops uvicorn too.
        server = subprocess.Popen(
            [sys.executable, "-m", "aegra_cli", "dev", "--postgres", "--no-reload", "--port", str(port)],
            cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_for_ok(f"http://127.0.0.1:{port}", server, log)
        client = get_sync_client(url=f"http://127.0.0.1:{port}", api_key=None)
        thread = client.threads.create(metadata={"test": "dev-postgres"})
        assert client.runs.wait(thread["thread_id"], "agent", input={"count": 41}) == {"count": 42}
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)
    output = log.read_text(errors="replace")

    # The run landed in the project's Postgres: `aegra up` finds the same container and its URL.
    up = CliRunner().invoke(app, ["up", "--config", str(project / "aegra.json")])
    assert up.exit_code == 0, up.output
    assert "(already running)" in up.stdout
    url = up.stdout.strip().splitlines()[-1].removeprefix("DATABASE_URL=")
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT status, values FROM threads WHERE thread_id = %s", (thread["thread_id"],))
        assert stored.fetchone() == ("idle", {"count": 42})

    password = url.rpartition("@")[0].rpartition(":")[2]
    assert "Postgres: container aegra-project-" in output
    assert "postgresql://aegra:***@127.0.0.1:" in output  # the panel shows it redacted
    assert password not in output  # and no log line or message shows it at all

    down = CliRunner().invoke(app, ["down", "--volumes", "--config", str(project / "aegra.json")])
    assert down.exit_code == 0, down.output


def _wait_for_ok(base: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        assert server.poll() is None, f"aegra dev exited early:\n{log.read_text(errors='replace')}"
        try:
            if httpx.get(f"{base}/ok", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"aegra dev did not answer within {STARTUP_TIMEOUT} s:\n{log.read_text(errors='replace')}")
