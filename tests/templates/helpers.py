"""Running things in a generated project the way a new user would: with this environment's Python, no API key,
and nowhere to send a request but localhost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aegra_cli import scaffold

TEMPLATES = [template.name for template in scaffold.list_templates()]

# Keys would switch the generated graphs to a real model; the rest would point aegra at another project or database.
_REMOVED = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LANGSMITH_TRACING",
            "LANGCHAIN_TRACING_V2", "AEGRA_CONFIG", "AEGRA_ENV_FILE", "AEGRA_DEV", "DATABASE_URL")
# Any HTTP request that is not to this machine fails at once instead of reaching the network.
_OFFLINE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "ALL_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost", "PYTHONDONTWRITEBYTECODE": "1"}


def offline_env() -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items()
        if key not in _REMOVED and not key.startswith("POSTGRES_") and key.upper() not in _OFFLINE
    }
    return {**env, **_OFFLINE}


def free_port() -> int:
    with socket.socket() as finder:
        finder.bind(("127.0.0.1", 0))
        return finder.getsockname()[1]


def run_in(project: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python <args>` in the project with this environment's Python, as `aegra` itself would be run."""
    return subprocess.run([sys.executable, *args], cwd=project, env=offline_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


class DevServer:
    """`aegra dev --no-reload` in a generated project, on a free port."""

    def __init__(self, project: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = project.parent / f"aegra-dev-{self.port}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "aegra_cli", "dev", "--no-reload", "--port", str(self.port)],
                cwd=project, env=offline_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2, trust_env=False) as client:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, f"aegra dev exited early:\n{self.output()}"
                try:
                    if client.get("/ok").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        pytest.fail(f"aegra dev did not answer /ok within {timeout}s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


