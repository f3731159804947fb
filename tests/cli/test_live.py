"""`aegra dev` for real: a subprocess serving a tmp project over HTTP, with and without reload."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

STEERING = ("AEGRA_CONFIG", "DATABASE_URL", "AEGRA_ENV_FILE", "AEGRA_DEV")


def free_port() -> int:
    with socket.socket() as finder:
        finder.bind(("127.0.0.1", 0))
        return finder.getsockname()[1]


class DevServer:
    def __init__(self, project: Path, *args: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = project.parent / f"aegra-dev-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if k not in STEERING and not k.startswith("POSTGRES_")}
        with self.log.open("wb") as log:
            # A session of its own, so stopping it also stops uvicorn's reload worker.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "aegra_cli", "dev", "--port", str(self.port), *args],
                cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until(self, check: Callable[[httpx.Client], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base, timeout=5) as client:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, f"aegra dev exited early:\n{self.output()}"
                try:
                    if check(client):
                        return
                except httpx.TransportError:
                    pass  # not listening yet, or restarting
                time.sleep(0.25)
        pytest.fail(f"timed out after {timeout}s waiting for {what}:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


@pytest.fixture
def start_dev() -> Iterator[Callable[..., DevServer]]:
    servers: list[DevServer] = []

    def start(project: Path, *args: str) -> DevServer:
        servers.append(DevServer(project, *args))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def ok(client: httpx.Client) -> bool:
    return client.get("/ok").status_code == 200


@pytest.mark.timeout(120)
def test_dev_serves_a_project(project: Path, start_dev) -> None:
    server = start_dev(project, "--no-reload")
    server.wait_until(ok, timeout=60, what="/ok")
    assert (project / ".aegra" / "aegra.db").is_file()
    assert "smith.langchain.com/studio/?baseUrl=" + server.base in server.output()
    server.stop()
    assert server.process.returncode == 0, server.output()


@pytest.mark.timeout(180)
def test_dev_reloads_when_aegra_json_changes(project: Path, start_dev) -> None:
    server = start_dev(project)
    server.wait_until(ok, timeout=60, what="/ok")

    config = json.loads((project / "aegra.json").read_text())
    config["graphs"]["second"] = "./graph.py:graph"
    (project / "aegra.json").write_text(json.dumps(config))

    def second_is_served(client: httpx.Client) -> bool:
        response = client.post("/assistants/search", json={"graph_id": "second"})
        return response.status_code == 200 and len(response.json()) > 0

    server.wait_until(second_is_served, timeout=90, what="the graph added to aegra.json")
