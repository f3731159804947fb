"""Running things in a generated project the way a new user would: with this environment's Python, no API key,
and nowhere to send a request but localhost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aegra_cli import scaffold
from tests.projects import DevServer

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


def run_in(project: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python <args>` in the project with this environment's Python, as `aegra` itself would be run."""
    return subprocess.run([sys.executable, *args], cwd=project, env=offline_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


def dev_server(project: Path) -> DevServer:
    """`aegra dev --no-reload` in a generated project, offline, on a free port."""
    return DevServer(project, "--no-reload", env=offline_env())
