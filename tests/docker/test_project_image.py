"""The Dockerfile `aegra init` writes: a generated project is built into an image by a real engine, run beside a
Postgres container as its compose.yaml runs it (DATABASE_URL pointing at the `postgres` service), and holds the
conversation its README promises through langgraph-sdk; the data outlives a restart of the app container; the
server runs as its own user, not root; and without DATABASE_URL the image serves on SQLite in its folder.
One template is enough: the Dockerfile, pyproject.toml and aegra.json are the same in every template
(tests/templates checks that); the human-in-the-loop one's conversation also pauses and resumes through Postgres.

No registry is reachable here, so the base image is a stand-in for the official Python one
(.ci/python-image/build.sh), passed as the Dockerfile's PYTHON_IMAGE build argument; the build's `pip install .`
reaches the package index, as a user's does.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from aegra_cli import scaffold
from tests.templates.helpers import converse

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

# compose.yaml's database service, by the name the app reaches it at.
POSTGRES = {"POSTGRES_USER": "aegra", "POSTGRES_PASSWORD": "aegra", "POSTGRES_DB": "aegra"}
DATABASE_URL = "postgresql://aegra:aegra@postgres:5432/aegra"


@pytest.fixture
def cleanups() -> Iterator[list[Callable[[], object]]]:
    """What removes each container, network and image a test made, run afterwards whatever happened (last first)."""
    steps: list[Callable[[], object]] = []
    yield steps
    from docker.errors import NotFound

    for step in reversed(steps):
        with contextlib.suppress(NotFound):
            step()


def _until(check, seconds: float, what: str, logs=None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    pytest.fail(f"{what} within {seconds:.0f} s" + (f"; its log:\n{logs()}" if logs else ""))


def _answers(url: str, container) -> bool:
    container.reload()
    if container.status == "exited":
        pytest.fail("the app container stopped; its log:\n" + container.logs().decode(errors="replace"))
    try:
        return httpx.get(f"{url}/ok", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _until_served(app, what: str) -> str:
    """The app's URL once it answers /ok (the engine picks its host port at each start)."""
    app.reload()
    url = f"http://127.0.0.1:{app.ports['2026/tcp'][0]['HostPort']}"
    _until(lambda: _answers(url, app), 60, f"{what} did not answer /ok", lambda: app.logs().decode(errors="replace"))
    return url


async def test_the_generated_dockerfile_builds_an_image_that_serves_the_project(
    engine, postgres_image: str, python_image: str, cleanups: list, tmp_path: Path
) -> None:
    from docker.errors import BuildError

    template = "hitl-agent"

    project = scaffold.init(
        tmp_path / "my-agent", scaffold.find_template(template), store=tmp_path / "store"
    ).directory
    tag = f"aegra-test-{template}:{uuid.uuid4().hex[:8]}"
    try:
        image, _ = engine.images.build(
            path=str(project), tag=tag, buildargs={"PYTHON_IMAGE": python_image}, network_mode="host", rm=True
        )
    except BuildError as exc:
        log = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)
        pytest.fail(f"docker build failed: {exc.msg}\n{log[-4000:]}")
    cleanups.append(lambda: engine.images.remove(image.id, force=True))

    network = engine.networks.create(f"aegra-test-{uuid.uuid4().hex[:8]}")
    cleanups.append(network.remove)
    database = engine.containers.run(
        postgres_image, detach=True, environment=POSTGRES, network=network.name,
        networking_config={network.name: engine.api.create_endpoint_config(aliases=["postgres"])},
    )
    cleanups.append(lambda: database.remove(force=True))
    ready = ["pg_isready", "-h", "127.0.0.1", "-U", "aegra", "-d", "aegra"]
    _until(lambda: database.exec_run(ready).exit_code == 0, 60, "Postgres did not answer",
           lambda: database.logs().decode(errors="replace"))

    app = engine.containers.run(
        image.id, detach=True, environment={"DATABASE_URL": DATABASE_URL}, network=network.name,
        ports={"2026/tcp": ("127.0.0.1", None)},
    )
    cleanups.append(lambda: app.remove(force=True))
    url = _until_served(app, "the app")
    logs = app.logs().decode(errors="replace")
    assert "Aegra" in logs and "(production)" in logs  # `aegra serve`, the image's command
    assert "@postgres:5432/aegra" in logs  # on the database compose.yaml names

    await converse(template, url)

    # The conversation is in Postgres, not in the container: a restarted app still has it.
    client = get_client(url=url)
    threads_before = await client.threads.search(limit=10)
    assert threads_before
    app.restart(timeout=10)
    client = get_client(url=_until_served(app, "the restarted app"))
    assert [t["thread_id"] for t in await client.threads.search(limit=10)] == [t["thread_id"] for t in threads_before]
    state = await client.threads.get_state(threads_before[0]["thread_id"])
    assert state["values"]["messages"]
    assert app.exec_run(["id", "-u"]).output.decode().strip() == "10001"  # not root

    # Without DATABASE_URL the image serves on SQLite in its own folder, which its user may write.
    alone = engine.containers.run(image.id, detach=True, ports={"2026/tcp": ("127.0.0.1", None)})
    cleanups.append(lambda: alone.remove(force=True))
    await converse(template, _until_served(alone, "the app without a database"))
    assert "aegra.db" in alone.exec_run(["ls", "/app/.aegra"]).output.decode().split()
