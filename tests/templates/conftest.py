"""Fixtures for template tests: a template store of their own, rendering into tmp_path, `aegra dev` in a project."""

from __future__ import annotations

from collections.abc import Callable, Iterator
import sys
from pathlib import Path

import pytest

from aegra_cli import scaffold
from tests.templates.helpers import DevServer, dev_server


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A template store of the tests' own, so they never touch ~/.local/share/aegra."""
    return tmp_path_factory.mktemp("template-store")


@pytest.fixture
def render(tmp_path: Path, store: Path) -> Callable[..., Path]:
    def render(template: str, name: str = "my-agent", **options: object) -> Path:
        created = scaffold.init(tmp_path / name, scaffold.find_template(template), store=store, **options)
        return created.directory

    return render


@pytest.fixture
def start_dev() -> Iterator[Callable[[Path], DevServer]]:
    servers: list[DevServer] = []

    def start(project: Path, python: str = sys.executable) -> DevServer:
        servers.append(dev_server(project, python))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
