"""What tests need to make a small real Aegra project in a temporary folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

# A one-node graph that needs nothing but langgraph: `count` goes up by one.
COUNTER_GRAPH = '''\
from typing_extensions import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    count: int


def step(state: State) -> dict:
    return {"count": state["count"] + 1}


builder = StateGraph(State)
builder.add_node("step", step)
builder.add_edge(START, "step")
builder.add_edge("step", END)
graph = builder.compile()
'''

# Variables that steer config discovery, the database and Docker: a developer's own values must not leak into
# tests that make their own projects.
STEERING_ENV = (
    "AEGRA_CONFIG",
    "DATABASE_URL",
    "AEGRA_ENV_FILE",
    "AEGRA_DEV",
    "AEGRA_POSTGRES_IMAGE",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
)


def free_port() -> int:
    with socket.socket() as finder:
        finder.bind(("127.0.0.1", 0))
        return finder.getsockname()[1]


def clean_env() -> dict[str, str]:
    """This process's environment without the variables that would steer an `aegra` subprocess."""
    return {k: v for k, v in os.environ.items() if k not in STEERING_ENV and not k.startswith("POSTGRES_")}


class DevServer:
    """`aegra dev` in a project folder, as a subprocess on a free port, its output in a log file."""

    def __init__(
        self,
        project: Path,
        *args: str,
        env: dict[str, str] | None = None,
        python: str = sys.executable,
        stdin: int | None = None,
    ) -> None:
        """`python`: the interpreter whose aegra runs (another environment's, to test what is installed there);
        `stdin`: what it reads as its terminal (subprocess.PIPE: `self.process.stdin`)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = project.parent / f"aegra-dev-{self.port}.log"
        with self.log.open("wb") as log:
            # A session of its own, so stopping it also stops uvicorn's reload worker.
            self.process = subprocess.Popen(
                [python, "-m", "aegra_cli", "dev", "--port", str(self.port), *args],
                cwd=project,
                env=clean_env() if env is None else env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=stdin,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until(self, check: Callable[[httpx.Client], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=5, trust_env=False) as client:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, f"aegra dev exited early:\n{self.output()}"
                try:
                    if check(client):
                        return
                except httpx.TransportError:
                    pass  # not listening yet, or restarting
                time.sleep(0.2)
        pytest.fail(f"timed out after {timeout}s waiting for {what}:\n{self.output()}")

    def wait_ready(self, timeout: float = 60) -> None:
        self.wait_until(lambda client: client.get("/ok").status_code == 200, timeout, "/ok")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
