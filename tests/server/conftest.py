"""One real Aegra server per session and backend, reached over TCP by the official SDK and by raw httpx.

The server is `create_app(Settings)` under uvicorn in a background thread with its own event loop, so the
tests talk to it exactly as a remote client would. Every backend in BACKENDS gets its own server and database;
today that is SQLite only. Postgres joins later by adding "postgres" to BACKENDS and a branch in
`database_url` (tests/postgres.py provides the server and fresh databases).

The server is shared by all tests, so tests never depend on global counts: they tag what they create with
unique metadata, and run on fresh threads.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from langgraph_sdk import get_client

from aegra_server.app import create_app
from aegra_server.settings import Settings

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

# Short, so that heartbeat comments and /wait keep-alive newlines show up within a test's slow node.
HEARTBEAT_SECONDS = 0.5
# Short, so that threads created with a tiny `ttl` are swept within a test.
THREAD_SWEEP_SECONDS = 0.3
STARTUP_TIMEOUT = 60.0
HTTP_TIMEOUT = httpx.Timeout(60.0, connect=5.0)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database for the session's server on `backend`."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('aegra-server') / 'aegra.db'}"
        return
    from tests.postgres import fresh_database

    with fresh_database(request.getfixturevalue("pg_server"), prefix="aegra_server") as url:
        yield url


@pytest.fixture(scope="session")
def server_settings(graphs_config: Path, database_url: str) -> Settings:
    return Settings(
        AEGRA_CONFIG=graphs_config,
        DATABASE_URL=database_url,
        AEGRA_HEARTBEAT_SECONDS=HEARTBEAT_SECONDS,
        AEGRA_THREAD_SWEEP_SECONDS=THREAD_SWEEP_SECONDS,
    )


class _ServerThread:
    """uvicorn on an already-bound socket, in a thread; `stop()` asks it to exit and waits."""

    def __init__(self, settings: Settings) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(settings), log_level="warning", lifespan="on", timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="aegra-test-server", daemon=True)
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # reported by start()
            self.error = exc

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                raise RuntimeError(f"the test server exited during startup: {self.error!r}")
            try:
                if httpx.get(f"{self.url}/ok", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the test server did not answer GET /ok within {STARTUP_TIMEOUT} s")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture(scope="session")
def server(server_settings: Settings) -> Iterator[_ServerThread]:
    server = _ServerThread(server_settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server_url(server: _ServerThread) -> str:
    return server.url


@pytest.fixture
async def client(server_url: str) -> AsyncIterator:
    """The official async SDK client."""
    sdk = get_client(url=server_url, api_key=None, timeout=HTTP_TIMEOUT)
    try:
        yield sdk
    finally:
        await sdk.http.client.aclose()


@pytest.fixture(scope="session")
def _tls_context() -> ssl.SSLContext:
    # Unused over plain HTTP, but httpx builds one per client (~70 ms); build it once.
    return ssl.create_default_context()


@pytest.fixture
async def http(server_url: str, _tls_context: ssl.SSLContext) -> AsyncIterator[httpx.AsyncClient]:
    """Raw HTTP for what the SDK hides: status codes, headers, SSE framing, odd bodies."""
    async with httpx.AsyncClient(base_url=server_url, timeout=HTTP_TIMEOUT, verify=_tls_context) as raw:
        yield raw
