"""Fixtures for CLI tests: small real projects in tmp_path and a clean environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

GRAPH = '''\
from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    count: int


def step(state: State) -> State:
    return {"count": state["count"] + 1}


builder = StateGraph(State)
builder.add_node("step", step)
builder.add_edge(START, "step")
builder.add_edge("step", END)
graph = builder.compile()
'''

# Variables that steer discovery and the database; a developer's own values must not leak into tests.
STEERING = ("AEGRA_CONFIG", "DATABASE_URL", "AEGRA_ENV_FILE", "AEGRA_DEV", "POSTGRES_HOST", "POSTGRES_PORT",
            "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in STEERING:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_project(tmp_path: Path):
    """Write a project with one trivial graph; returns the config path."""

    def make(root: Path = tmp_path / "project", config: dict | None = None, name: str = "aegra.json") -> Path:
        root.mkdir(parents=True, exist_ok=True)
        (root / "graph.py").write_text(GRAPH)
        path = root / name
        path.write_text(json.dumps(config or {"graphs": {"agent": "./graph.py:graph"}}))
        return path

    return make


@pytest.fixture
def project(make_project) -> Path:
    """The folder of a ready project (aegra.json + graph.py)."""
    return make_project().parent


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
