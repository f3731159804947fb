"""Tests against a real Docker engine: skipped, with the reason, where none answers.

The Postgres image comes from AEGRA_TEST_POSTGRES_IMAGE (default local/aegra-postgres:17, which
.ci/postgres-image/build.sh builds without any registry), the generated projects' base image from
AEGRA_TEST_PYTHON_IMAGE (default local/python:slim, from .ci/python-image/build.sh); the pull test uses a local registry named by
AEGRA_TEST_REGISTRY. With AEGRA_REQUIRE_DOCKER=1 (set by CI) a missing engine, image or registry fails these
tests instead of skipping them, so CI cannot pass without having run them.

Every test gets its own project folder, so its own container and volume (names and labels come from the
folder); whatever a test leaves behind is removed by label afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aegra_cli import docker_engine, docker_postgres
from tests.projects import COUNTER_GRAPH, STEERING_ENV

IMAGE_ENV = "AEGRA_TEST_POSTGRES_IMAGE"
DEFAULT_TEST_IMAGE = "local/aegra-postgres:17"
REQUIRE_ENV = "AEGRA_REQUIRE_DOCKER"
REGISTRY_ENV = "AEGRA_TEST_REGISTRY"
PYTHON_IMAGE_ENV = "AEGRA_TEST_PYTHON_IMAGE"
DEFAULT_PYTHON_IMAGE = "local/python:slim"




def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a Docker engine and the test Postgres image")


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set, so this is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine():
    """A Docker SDK client for the engine the environment names."""
    try:
        client = docker_engine.connect(os.environ)
    except docker_engine.DockerUnavailable as exc:
        _unavailable(f"no Docker engine: {exc.message}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def postgres_image(engine) -> str:
    from docker.errors import ImageNotFound

    image = os.environ.get(IMAGE_ENV) or DEFAULT_TEST_IMAGE
    try:
        engine.images.get(image)
    except ImageNotFound:
        _unavailable(f"the test Postgres image {image} is not built: run .ci/postgres-image/build.sh")
    return image


@pytest.fixture(scope="session")
def python_image(engine) -> str:
    """A stand-in for the official Python image, the base of generated projects' images (.ci/python-image)."""
    from docker.errors import ImageNotFound

    image = os.environ.get(PYTHON_IMAGE_ENV) or DEFAULT_PYTHON_IMAGE
    try:
        engine.images.get(image)
    except ImageNotFound:
        _unavailable(f"the test Python image {image} is not built: run .ci/python-image/build.sh")
    return image


@pytest.fixture(scope="session")
def registry(engine) -> str:
    """host:port of a registry the engine may push to and pull from (AEGRA_TEST_REGISTRY; .ci/docker-engine.sh
    starts Debian's docker-registry on 127.0.0.1:5000), for what needs a real pull."""
    import httpx

    address = os.environ.get(REGISTRY_ENV)
    if not address:
        _unavailable(f"no test registry: set {REGISTRY_ENV}, e.g. to 127.0.0.1:5000 (see .ci/docker-engine.sh)")
    try:
        httpx.get(f"http://{address}/v2/", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        _unavailable(f"the test registry at {address} does not answer: {exc}")
    return address


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in STEERING_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_project(tmp_path: Path, engine) -> Iterator[Callable[[str], Path]]:
    """Make a project folder with one graph; the containers and volumes of every one made are removed after the
    test, whatever happened."""
    from docker.errors import NotFound

    made: list[Path] = []

    def make(name: str = "project") -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "graph.py").write_text(COUNTER_GRAPH)
        (folder / "aegra.json").write_text('{"graphs": {"agent": "./graph.py:graph"}}')
        made.append(folder)
        return folder

    yield make
    for folder in made:
        names = docker_postgres.project_names(folder)
        for container in engine.containers.list(all=True, filters={"label": names.label_filters}):
            container.remove(force=True)
        try:
            engine.volumes.get(names.volume).remove(force=True)
        except NotFound:
            pass


@pytest.fixture
def project(make_project: Callable[[str], Path]) -> Path:
    return make_project("project")
