"""Shared by every test folder: the repository root is importable (for `tests.postgres`, `tests.server.helpers`),
and the test graphs' aegra.json is one fixture away."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def graphs_config() -> Path:
    """tests/graphs/aegra.json: echo, chat, hitl, slow, subgraph, custom, configurable, failing, factory, whoami."""
    return ROOT / "tests" / "graphs" / "aegra.json"


@pytest.fixture(scope="session")
def pg_server():
    """One Postgres server for the whole test session (embedded, or AEGRA_TEST_POSTGRES_URL); tests create their
    own databases on it."""
    from tests.postgres import postgres_server

    with postgres_server() as url:
        yield url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The suite runs on two pytest-xdist workers (pyproject's addopts, `--dist loadgroup`): it mostly waits on
    server processes and sleeps, so two halve its time on two cores. A file's tests stay on one worker (its
    module-scoped servers start once); the Docker tests all share one, since they compete for the engine and
    its host ports."""
    for item in items:
        path = Path(str(item.path)).relative_to(ROOT)
        group = "docker" if path.parts[:2] == ("tests", "docker") else str(path)
        item.add_marker(pytest.mark.xdist_group(group))
