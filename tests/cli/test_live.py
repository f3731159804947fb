"""`aegra dev` for real: a subprocess serving a tmp project over HTTP, with and without reload."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from aegra_server.storage.sqlite_sharing import folder_for
from tests.projects import DevServer, clean_env, free_port


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
    database = project / ".aegra" / "aegra.db"
    assert database.is_file()
    assert folder_for(str(database)).is_dir()  # its locks, while served
    assert "smith.langchain.com/studio/?baseUrl=" + server.url in server.output()
    server.stop()
    assert server.process.returncode == 0, server.output()
    assert not folder_for(str(database)).exists()  # nothing left in the temporary directory


@pytest.mark.timeout(120)
def test_dev_on_an_in_memory_database(project: Path, start_dev) -> None:
    server = start_dev(project, "--no-reload", "--database-url", "sqlite:///:memory:")
    server.wait_ready()
    with httpx.Client(base_url=server.url, trust_env=False) as client:  # the server set up its own schema
        thread = client.post("/threads", json={}).json()
        assert client.get(f"/threads/{thread['thread_id']}").status_code == 200
    assert "sqlite:///:memory: (in memory: gone when the server stops)" in server.output()  # not "revision None"
    assert not (project / ".aegra" / "aegra.db").exists()


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


# A graph whose step size comes from the environment, to see which .env and which code the server runs.
STEP_GRAPH = '''\
import os

from typing_extensions import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    count: int


def step(state: State) -> dict:
    return {"count": state["count"] + int(os.environ.get("AEGRA_TEST_STEP", "1")) * FACTOR}


FACTOR = 1
builder = StateGraph(State)
builder.add_node("step", step)
builder.add_edge(START, "step")
builder.add_edge("step", END)
graph = builder.compile()
'''


def counts_to(expected: int):
    def check(client: httpx.Client) -> bool:
        response = client.post("/runs/wait", json={"assistant_id": "agent", "input": {"count": 0}})
        return response.status_code == 200 and response.json() == {"count": expected}

    return check


@pytest.mark.timeout(240)
def test_dev_reloads_when_env_or_a_graph_file_changes(project: Path, start_dev) -> None:
    config = json.loads((project / "aegra.json").read_text())
    config["graphs"] = {"agent": "./graph.py:graph"}
    (project / "aegra.json").write_text(json.dumps(config))
    (project / "graph.py").write_text(STEP_GRAPH)
    (project / ".env").write_text("AEGRA_TEST_STEP=2\n")
    server = start_dev(project)
    server.wait_until(counts_to(2), timeout=60, what="a run with AEGRA_TEST_STEP=2 from .env")

    (project / ".env").write_text("AEGRA_TEST_STEP=3\n")
    server.wait_until(counts_to(3), timeout=90, what="the new .env value after a reload")

    (project / "graph.py").write_text(STEP_GRAPH.replace("FACTOR = 1", "FACTOR = 10"))
    server.wait_until(counts_to(30), timeout=90, what="the edited graph after a reload")

    # A typo while it runs: two lines that say what and where, no traceback; saving the fix brings it back.
    (project / "graph.py").write_text(STEP_GRAPH + "\ndef broken(:\n")

    def told_the_typo(client: httpx.Client) -> bool:
        return "hint: fix the syntax error in" in server.output()

    server.wait_until(told_the_typo, timeout=90, what="the syntax error, told")
    assert "Traceback" not in server.output()
    (project / "graph.py").write_text(STEP_GRAPH.replace("FACTOR = 1", "FACTOR = 100"))
    server.wait_until(counts_to(300), timeout=90, what="the fixed graph after a reload")


@pytest.mark.timeout(180)
def test_dev_reload_reads_the_projects_own_modules_again(project: Path, start_dev) -> None:
    # Server processes fork from one that imported the server beforehand (aegra_cli.reloader): a module the graph
    # imports from the project must still be read as it is now, not as it was when that process started.
    (project / "aegra.json").write_text(json.dumps({"dependencies": ["."], "graphs": {"agent": "./graph.py:graph"}}))
    (project / "graph.py").write_text(STEP_GRAPH.replace("FACTOR = 1\n", "from helper import FACTOR\n"))
    (project / "helper.py").write_text("FACTOR = 4\n")
    server = start_dev(project)
    server.wait_until(counts_to(4), timeout=60, what="a run with the helper's FACTOR = 4")

    (project / "helper.py").write_text("FACTOR = 7\n")
    server.wait_until(counts_to(7), timeout=90, what="the edited helper after a reload")


@pytest.mark.timeout(240)
def test_dev_watches_a_dependency_folder_added_to_aegra_json_while_it_runs(project: Path, start_dev) -> None:
    # The folders aegra dev watches were those of aegra.json when it started: a shared package added to
    # `dependencies` while it ran was importable after the reload, but its edits restarted nothing.
    (project / "aegra.json").write_text(json.dumps({"dependencies": ["."], "graphs": {"agent": "./graph.py:graph"}}))
    (project / "graph.py").write_text(STEP_GRAPH)
    server = start_dev(project)
    server.wait_until(counts_to(1), timeout=60, what="a first run")

    shared = project.parent / f"{project.name}-shared"  # beside the project, not in it
    shared.mkdir()
    (shared / "shared_factor.py").write_text("FACTOR = 5\n")
    (project / "graph.py").write_text(STEP_GRAPH.replace("FACTOR = 1\n", "from shared_factor import FACTOR\n"))
    (project / "aegra.json").write_text(
        json.dumps({"dependencies": [".", str(shared)], "graphs": {"agent": "./graph.py:graph"}})
    )
    server.wait_until(counts_to(5), timeout=90, what="the shared folder's FACTOR after aegra.json's reload")

    (shared / "shared_factor.py").write_text("FACTOR = 8\n")
    server.wait_until(counts_to(8), timeout=90, what="the edited module of the added folder after a reload")


# A graph that reads a line from its server process's stdin, as breakpoint() (pdb) does.
STDIN_GRAPH = '''\
import sys

from typing_extensions import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    line: str


def read(state: State) -> dict:
    return {"line": sys.stdin.readline()}


builder = StateGraph(State)
builder.add_node("read", read)
builder.add_edge(START, "read")
builder.add_edge("read", END)
graph = builder.compile()
'''


@pytest.mark.timeout(120)
def test_dev_server_process_reads_the_terminal_of_aegra_dev(project: Path) -> None:
    # So that a breakpoint() in a graph can be answered where `aegra dev` runs.
    (project / "graph.py").write_text(STDIN_GRAPH)
    server = DevServer(project, stdin=subprocess.PIPE)
    try:
        server.wait_ready()
        server.process.stdin.write(b"typed at the terminal\n")
        server.process.stdin.flush()
        with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as client:
            response = client.post("/runs/wait", json={"assistant_id": "agent", "input": {"line": ""}})
        assert response.json() == {"line": "typed at the terminal\n"}, server.output()
    finally:
        server.stop()


def _descendants(pid: int) -> set[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in children}.union(*(_descendants(int(child)) for child in children))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process tree from /proc (Linux)")
@pytest.mark.timeout(120)
def test_dev_leaves_no_process_behind(project: Path, start_dev) -> None:
    # SIGTERM to `aegra dev` alone, not to its process group: its server process and the process those are
    # forked from must go with it.
    server = start_dev(project)
    server.wait_ready()
    assert "Warning:" not in server.output()  # nothing the process they fork from imports warns
    helpers = _descendants(server.process.pid)
    assert len(helpers) >= 2, helpers  # at least the server process and the one it was forked from
    server.process.terminate()
    server.process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while (left := {pid for pid in helpers if Path(f"/proc/{pid}").exists()}) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, [Path(f"/proc/{pid}/cmdline").read_text() for pid in left]


@pytest.mark.timeout(120)
def test_of_two_servers_started_at_once_on_one_port_the_second_is_refused(project: Path) -> None:
    """`aegra serve --workers` listens with SO_REUSEPORT, which another server of the same user could join: the
    kernel would then spread connections over both, each answering from its own database. Started at the same
    moment, both past the check that the port is free, the second is still refused, with the one-line error."""
    port = free_port()
    servers = []
    for name in ("one", "two"):
        log = project.parent / f"{name}.log"
        database = f"sqlite:///{project.parent / name}.db"
        command = [sys.executable, "-m", "aegra_cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                   "--workers", "2", "--database-url", database]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, cwd=project, env=clean_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        servers.append((process, log))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not any(process.poll() is not None for process, _ in servers):
            assert time.monotonic() < deadline, [log.read_text() for _, log in servers]
            time.sleep(0.2)
        (refused, refused_log), = [(p, log) for p, log in servers if p.poll() is not None]
        assert refused.returncode == 1, refused_log.read_text()
        assert f"port {port} is in use" in refused_log.read_text()
        (serving, serving_log), = [(p, log) for p, log in servers if p.poll() is None]
        while True:
            assert serving.poll() is None and time.monotonic() < deadline, serving_log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/ok", timeout=2, trust_env=False).status_code == 200:
                    break
            time.sleep(0.2)
        thread_id = httpx.post(f"{url}/threads", json={}, trust_env=False).json()["thread_id"]
        for _ in range(20):  # each on a new connection, which the kernel could hand to any listener on the port
            assert httpx.get(f"{url}/threads/{thread_id}", trust_env=False).status_code == 200
    finally:
        for process, _ in servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process, _ in servers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
