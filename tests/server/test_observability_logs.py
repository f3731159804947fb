"""What an operator sees on stderr: `aegra serve` and `aegra dev` for real, in subprocesses.

`serve` writes one JSON object per line (uvicorn's own lines included); `dev` writes lines for a person. Both
log one access line per request (never uvicorn's as well), with the request id, and the run's lines carry the
id of the request that started it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

OBSERVED = Path(__file__).parent / "observed" / "aegra.json"
LEAKY_KEY = "sk-test-0123456789abcdefghij"  # what observed/weather.py logs
# A developer's own settings must not change what these tests see.
_STEERING_PREFIXES = ("AEGRA_", "LOG_", "OTEL_", "LANGFUSE_", "PHOENIX_", "POSTGRES_")
_STEERING = ("DATABASE_URL", "ENABLE_METRICS")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, tmp_path: Path, command: str, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = tmp_path / f"{command}-{self.port}.stderr"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(_STEERING_PREFIXES) and k not in _STEERING}
        args = [sys.executable, "-m", "aegra_cli", command, "--config", str(OBSERVED), "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--database-url", f"sqlite:///{tmp_path / 'aegra.db'}"]
        if command == "dev":
            args.append("--no-reload")
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                args, env={**clean, **env}, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"aegra {command} exited:\n{self.stderr()}"
            try:
                if httpx.get(f"{self.url}/ok", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"aegra {command} did not start:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start_server(command: str, **env: str) -> Server:
        servers.append(Server(tmp_path, command, env))
        return servers[-1]

    yield start_server
    for server in servers:
        server.stop()


def exercise(server: Server, request_id: str) -> tuple[str, str]:
    """A thread, a run of `weather` under `request_id`, and the probes; returns (thread id, run id)."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        thread_id = http.post("/threads", json={}).json()["thread_id"]
        response = http.post(
            f"/threads/{thread_id}/runs/wait",
            json={"assistant_id": "weather", "input": {"messages": [{"role": "user", "content": "hello"}]}},
            headers={"X-Request-ID": request_id},
        )
        assert response.status_code == 200
        assert response.headers["x-request-id"] == request_id
        for probe in ("/ok", "/health", "/ready"):
            assert http.get(probe).status_code == 200
    return thread_id, response.headers["content-location"].rsplit("/", 1)[-1]


@pytest.mark.timeout(120)
def test_serve_writes_json_lines(start) -> None:
    server = start("serve")
    thread_id, run_id = exercise(server, "serve-req-1")
    server.stop()
    text = server.stderr()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
    assert any(line["logger"] == "uvicorn.error" and "startup complete" in line["message"] for line in lines)
    assert {"timestamp", "level", "logger", "message"} <= set(lines[0])

    access = [line for line in lines if line["logger"] == "aegra.access"]
    assert [line["path"] for line in access] == ["/threads", f"/threads/{thread_id}/runs/wait"]  # probes excluded
    wait = access[1]
    assert (wait["method"], wait["status"], wait["request_id"]) == ("POST", 200, "serve-req-1")
    assert wait["duration_ms"] > 0
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]

    run_lines = [line for line in lines if line["logger"] == "tests.weather"]
    assert len(run_lines) == 2
    for line in run_lines:
        assert (line["request_id"], line["run_id"], line["thread_id"]) == ("serve-req-1", run_id, thread_id)
    assert LEAKY_KEY not in text


@pytest.mark.timeout(120)
def test_dev_writes_readable_lines_without_duplicates(start) -> None:
    server = start("dev")
    thread_id, run_id = exercise(server, "dev-req-1")
    server.stop()
    text = server.stderr()
    access = [line for line in text.splitlines() if " aegra.access: " in line]
    assert len(access) == 2, text
    assert re.fullmatch(
        rf"\d\d:\d\d:\d\d\.\d{{3}} INFO  aegra\.access: POST /threads/{thread_id}/runs/wait 200 [\d.]+ ms  "
        r"request_id=dev-req-1",
        access[1],
    ), access[1]
    assert f'"POST /threads/{thread_id}/runs/wait HTTP/1.1" 200' not in text  # uvicorn's access line is off
    run_lines = [line for line in text.splitlines() if " tests.weather: " in line]
    assert len(run_lines) == 2
    assert all(f"request_id=dev-req-1 run_id={run_id} thread_id={thread_id}" in line for line in run_lines)
    assert not any(line.startswith("{") for line in text.splitlines())
    assert LEAKY_KEY not in text


@pytest.mark.timeout(120)
def test_format_and_level_and_exclusions_are_configurable(start) -> None:
    server = start("serve", LOG_FORMAT="console", LOG_LEVEL="WARNING")
    exercise(server, "quiet-1")
    server.stop()
    text = server.stderr()
    assert "aegra.access" not in text and "tests.weather" not in text  # INFO is below WARNING
    assert not any(line.startswith("{") for line in text.splitlines())

    server = start("serve", LOG_EXCLUDE_PATHS="/threads")
    exercise(server, "exclude-1")
    server.stop()
    paths = [json.loads(line).get("path") for line in server.stderr().splitlines() if "aegra.access" in line]
    assert "/threads" not in paths and "/ok" in paths and "/health" in paths  # only what was listed is excluded
