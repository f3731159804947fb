"""Fixtures for CLI tests: small real projects in tmp_path and a clean environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.projects import COUNTER_GRAPH, STEERING_ENV




@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in STEERING_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_project(tmp_path: Path):
    """Write a project with one trivial graph; returns the config path."""

    def make(root: Path = tmp_path / "project", config: dict | None = None, name: str = "aegra.json") -> Path:
        root.mkdir(parents=True, exist_ok=True)
        (root / "graph.py").write_text(COUNTER_GRAPH)
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
