"""`aegra dev` for real: a subprocess serving a tmp project over HTTP, with and without reload."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.projects import DevServer


@pytest.fixture
def start_dev() -> Iterator[Callable[..., DevServer]]:
    servers: list[DevServer] = []

    def start(project: Path, *args: str) -> DevServer:
        servers.append(DevServer(project, *args))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.mark.timeout(120)
def test_dev_serves_a_project(project: Path, start_dev) -> None:
    server = start_dev(project, "--no-reload")
    server.wait_ready()
    assert (project / ".aegra" / "aegra.db").is_file()
    assert "smith.langchain.com/studio/?baseUrl=" + server.url in server.output()
    server.stop()
    assert server.process.returncode == 0, server.output()


@pytest.mark.timeout(180)
def test_dev_reloads_when_aegra_json_changes(project: Path, start_dev) -> None:
    server = start_dev(project)
    server.wait_ready()

    config = json.loads((project / "aegra.json").read_text())
    config["graphs"]["second"] = "./graph.py:graph"
    (project / "aegra.json").write_text(json.dumps(config))

    def second_is_served(client: httpx.Client) -> bool:
        response = client.post("/assistants/search", json={"graph_id": "second"})
        return response.status_code == 200 and len(response.json()) > 0

    server.wait_until(second_is_served, timeout=90, what="the graph added to aegra.json")
