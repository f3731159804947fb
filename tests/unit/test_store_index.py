"""Semantic store search and TTLs on SQLite without sqlite-vec (AegraSqliteStore), embeddings resolution for
`store.index.embed`, and `open_store` wiring. The embedding is tests/graphs/embed.py: a deterministic hashed
bag of words, so no network and no keys."""

from __future__ import annotations

import asyncio
import importlib.machinery
import json
import sqlite3
import sys
import time
import types
from contextlib import AsyncExitStack, closing
from pathlib import Path

import aiosqlite
import pytest
from langchain_core.embeddings import Embeddings
from langgraph.store.base import GetOp, PutOp, SearchOp

from aegra_server import embeddings as embeddings_module
from aegra_server.config import parse_config
from aegra_server.embeddings import CheckedEmbeddings, Provider, load_embeddings, resolve_embeddings
from aegra_server.errors import ConfigError
from aegra_server.storage.urls import parse_database_url
from aegra_server.store import open_store
from aegra_server.store_index import AegraSqliteStore, vector_score

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ROOT / "tests" / "graphs"
sys.path.insert(0, str(GRAPHS))
import embed as test_embed  # noqa: E402  (tests/graphs/embed.py)

DIMS = test_embed.DIMS
NS = ("docs",)

DOCS = {
    "cats": {"text": "cats purr and chase mice", "kind": "animal", "legs": 4},
    "dogs": {"text": "dogs bark and fetch sticks", "kind": "animal", "legs": 4},
    "birds": {"text": "birds sing and fly south", "kind": "animal", "legs": 2},
    "python": {"text": "python is a programming language", "kind": "tech", "tags": ["code", "snake"]},
    "rust": {"text": "rust is a systems programming language", "kind": "tech", "tags": ["code", "crab"]},
}


def _config(tmp_path: Path, store: dict | None = None, **extra):
    data = {"graphs": {"echo": f"{GRAPHS / 'echo.py'}:graph"}, **extra}
    if store is not None:
        data["store"] = store
    return parse_config(data, tmp_path / "aegra.json")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
async def make_store(db_path: Path):
    """Open AegraSqliteStores on one SQLite file; all closed after the test."""
    opened: list[tuple[AegraSqliteStore, aiosqlite.Connection]] = []

    async def make(index: dict | None = "default", ttl: dict | None = None) -> AegraSqliteStore:  # type: ignore[assignment]
        if index == "default":
            index = {"dims": DIMS, "embed": test_embed.embed, "fields": ["text"]}
        conn = await aiosqlite.connect(str(db_path), isolation_level=None)
        store = AegraSqliteStore(conn, index=index, ttl=ttl)
        await store.setup()
        opened.append((store, conn))
        return store

    yield make
    for store, conn in opened:
        await store.stop_ttl_sweeper(timeout=5)
        await conn.close()


async def _put_docs(store: AegraSqliteStore, ns: tuple[str, ...] = NS) -> None:
    for key, value in DOCS.items():
        await store.aput(ns, key, value)


def _rows(db_path: Path, sql: str, *params) -> list[tuple]:
    with closing(sqlite3.connect(db_path)) as conn:
        return conn.execute(sql, params).fetchall()


def _vector_keys(db_path: Path) -> set[str]:
    return {row[0] for row in _rows(db_path, "SELECT DISTINCT key FROM store_vectors")}


# ---------------------------------------------------------------------------------------------------------
# Scoring and the embeddings wrapper


def test_vector_score_is_cosine_of_unit_vectors():
    from array import array

    a = array("f", [0.6, 0.8, 0.0]).tobytes()
    b = array("f", [0.0, 0.0, 1.0]).tobytes()
    assert vector_score(a, a) == pytest.approx(1.0, abs=1e-6)
    assert vector_score(a, b) == pytest.approx(0.0)
    assert vector_score(None, a) is None
    assert vector_score(a, array("f", [1.0]).tobytes()) is None  # another dimension: not comparable


async def test_checked_embeddings_normalises_and_checks_dims():
    inner = CheckedEmbeddings(test_embed.HashEmbeddings(4), 4, normalize=True)
    scaled = CheckedEmbeddings(_Constant([3.0, 4.0, 0.0, 0.0]), 4, normalize=True)
    assert scaled.embed_query("x") == pytest.approx([0.6, 0.8, 0.0, 0.0])
    assert await scaled.aembed_documents(["x", "y"]) == [pytest.approx([0.6, 0.8, 0.0, 0.0])] * 2
    assert len(inner.embed_documents(["a b c"])[0]) == 4
    with pytest.raises(ValueError, match="3 dimensions, but store.index.dims is 4"):
        CheckedEmbeddings(_Constant([1.0, 2.0, 3.0]), 4).embed_query("x")
    with pytest.raises(ValueError, match="NaN or infinite"):
        CheckedEmbeddings(_Constant([float("nan")] * 4), 4).embed_query("x")
    assert CheckedEmbeddings(_Constant([0.0] * 4), 4, normalize=True).embed_query("x") == [0.0] * 4


class _Constant(Embeddings):
    def __init__(self, vector: list[float]) -> None:
        self.vector = vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(self.vector) for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        return list(self.vector)


# ---------------------------------------------------------------------------------------------------------
# store.index.embed resolution


def _index(embed: str, dims: int = DIMS) -> dict:
    return {"index": {"dims": dims, "embed": embed}}


@pytest.mark.parametrize("attribute", ["embed", "aembed", "embeddings"])
async def test_embed_from_a_file_relative_to_the_config(attribute: str):
    config = parse_config(
        {"graphs": {"echo": "./echo.py:graph"}, "store": _index(f"./embed.py:{attribute}")}, GRAPHS / "aegra.json"
    )
    embeddings = resolve_embeddings(config)
    assert isinstance(embeddings, Embeddings)
    vectors = await embeddings.aembed_documents(["cats purr", "dogs bark"])
    assert vectors == [test_embed.embed_one("cats purr"), test_embed.embed_one("dogs bark")]


def test_embed_from_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "aegra_test_embed_mod.py").write_text("def vectors(texts):\n    return [[1.0, 0.0] for _ in texts]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = _config(tmp_path, _index("aegra_test_embed_mod:vectors", dims=2))
    assert resolve_embeddings(config).embed_documents(["x"]) == [[1.0, 0.0]]


@pytest.mark.parametrize(
    ("embed", "message"),
    [
        ("./nope.py:embed", "does not exist"),
        ("./embed.py:missing", "has no attribute 'missing'"),
        ("./embed.py:HashEmbeddings", "is a class"),
        ("./embed.py:DIMS", "is a int"),
        ("no_such_module_for_aegra:embed", "cannot import 'no_such_module_for_aegra'"),
    ],
)
def test_embed_errors_are_config_errors(embed: str, message: str):
    config = parse_config({"graphs": {"echo": "./echo.py:graph"}, "store": _index(embed)}, GRAPHS / "aegra.json")
    with pytest.raises(ConfigError, match=message):
        resolve_embeddings(config)


def test_embed_must_name_a_target(tmp_path: Path):
    with pytest.raises(ConfigError, match="provider:model"):
        _config(tmp_path, _index("text-embedding-3-small"))
    with pytest.raises(ConfigError, match="dims"):
        _config(tmp_path, _index("./embed.py:embed", dims=0))


def test_provider_without_its_package_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(
        embeddings_module.PROVIDERS, "fakeprovider", Provider("aegra_fake_provider_pkg", "FakeEmbeddings", "model")
    )
    with pytest.raises(ConfigError) as info:
        resolve_embeddings(_config(tmp_path, _index("fakeprovider:fake-model")))
    assert "'aegra-fake-provider-pkg' is not installed" in info.value.message
    assert info.value.hint == "pip install aegra-fake-provider-pkg (in the environment aegra runs in)"


def test_openai_without_langchain_openai(tmp_path: Path):
    import importlib.util

    if importlib.util.find_spec("langchain_openai") is not None:
        pytest.skip("langchain-openai is installed here")
    with pytest.raises(ConfigError) as info:
        resolve_embeddings(_config(tmp_path, _index("openai:text-embedding-3-small", dims=1536)))
    assert "pip install langchain-openai" in (info.value.hint or "")


def _fake_provider_package(monkeypatch: pytest.MonkeyPatch, cls: type) -> None:
    module = types.ModuleType("aegra_fake_provider_pkg")
    module.__spec__ = importlib.machinery.ModuleSpec("aegra_fake_provider_pkg", None)
    module.FakeEmbeddings = cls  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "aegra_fake_provider_pkg", module)
    monkeypatch.setitem(
        embeddings_module.PROVIDERS, "fakeprovider", Provider("aegra_fake_provider_pkg", "FakeEmbeddings", "model_id")
    )


def test_provider_package_gets_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    class FakeEmbeddings(test_embed.HashEmbeddings):
        def __init__(self, model_id: str) -> None:
            super().__init__(DIMS)
            self.model_id = model_id

    _fake_provider_package(monkeypatch, FakeEmbeddings)
    embeddings = resolve_embeddings(_config(tmp_path, _index("fakeprovider:org/model:v2")))
    assert isinstance(embeddings, FakeEmbeddings)
    assert embeddings.model_id == "org/model:v2"


def test_provider_failing_to_start_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    class FakeEmbeddings(test_embed.HashEmbeddings):
        def __init__(self, model_id: str) -> None:
            raise ValueError("Did not find api_key")

    _fake_provider_package(monkeypatch, FakeEmbeddings)
    with pytest.raises(ConfigError, match="Did not find api_key") as info:
        resolve_embeddings(_config(tmp_path, _index("fakeprovider:m")))
    assert "API key" in (info.value.hint or "")


def test_load_embeddings_uses_the_index_section(tmp_path: Path):
    config = _config(tmp_path, _index(f"{GRAPHS / 'embed.py'}:embed"))
    assert config.store is not None and config.store.index is not None
    embeddings = load_embeddings(config.store.index, config)
    assert embeddings.embed_query("cats") == test_embed.embed_one("cats")


# ---------------------------------------------------------------------------------------------------------
# AegraSqliteStore: semantic search


async def test_query_ranks_best_first_with_scores(make_store):
    store = await make_store()
    await _put_docs(store)
    results = await store.asearch(NS, query="cats chase mice")
    assert results[0].key == "cats"
    scores = [r.score for r in results]
    assert all(s is not None for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0.5 > scores[1]
    assert {r.key for r in results} == set(DOCS)
    top2 = await store.asearch(NS, query="programming language", limit=2)
    assert {r.key for r in top2} == {"python", "rust"}
    # without a query: LangGraph's plain search, no scores
    plain = await store.asearch(NS)
    assert {r.key for r in plain} == set(DOCS) and all(r.score is None for r in plain)


async def test_index_false_and_per_item_paths(make_store, db_path: Path):
    store = await make_store()
    await _put_docs(store)
    await store.aput(NS, "hidden", {"text": "cats chase mice all day"}, index=False)
    await store.aput(NS, "titled", {"title": "cats chase mice", "text": "nothing related"}, index=["title"])
    results = await store.asearch(NS, query="cats chase mice", limit=10)
    keys = [r.key for r in results]
    assert "hidden" not in keys  # no vectors: not a semantic match at all (as on Postgres)
    assert keys[0] == "titled" and results[0].score == pytest.approx(1.0, abs=1e-5)
    assert (await store.aget(NS, "hidden")).value["text"] == "cats chase mice all day"
    fields = {row[0] for row in _rows(db_path, "SELECT field_name FROM store_vectors WHERE key = 'titled'")}
    assert fields == {"title"}
    # `fields` from the config: only "text" is embedded, so words elsewhere in the value do not match
    await store.aput(NS, "kinded", {"text": "unrelated words", "kind": "cats chase mice"})
    assert (await store.asearch(NS, query="cats chase mice", limit=1))[0].key != "kinded"


async def test_reput_replaces_vectors_and_delete_removes_them(make_store, db_path: Path):
    store = await make_store()
    await _put_docs(store)
    await store.aput(NS, "cats", {"text": "cats purr"}, index=False)
    assert "cats" not in [r.key for r in await store.asearch(NS, query="cats purr", limit=10)]
    assert "cats" not in _vector_keys(db_path)
    await store.aput(NS, "dogs", {"text": "cats purr loudly"})
    assert (await store.asearch(NS, query="cats purr", limit=1))[0].key == "dogs"
    await store.adelete(NS, "dogs")
    assert "dogs" not in _vector_keys(db_path)
    assert "dogs" not in [r.key for r in await store.asearch(NS, query="cats purr", limit=10)]


async def test_several_vectors_per_item_rank_by_the_best(make_store, db_path: Path):
    store = await make_store({"dims": DIMS, "embed": test_embed.embed, "fields": ["text", "tags[*]"]})
    await _put_docs(store)
    assert len(_rows(db_path, "SELECT * FROM store_vectors WHERE key = 'python'")) == 3  # text, tags.0, tags.1
    results = await store.asearch(NS, query="snake", limit=10)
    assert results[0].key == "python" and results[0].score == pytest.approx(1.0, abs=1e-5)
    assert [r.key for r in results].count("python") == 1
    await store.aput(NS, "python", {"text": "python", "tags": ["code"]})
    assert len(_rows(db_path, "SELECT * FROM store_vectors WHERE key = 'python'")) == 2  # tags.1 went away


async def test_limit_and_offset_page_through_the_ranking(make_store):
    store = await make_store({"dims": DIMS, "embed": test_embed.embed, "fields": ["text", "tags[*]"]})
    for i in range(40):
        words = " ".join(f"w{j}" for j in range(i % 7, i % 7 + 5))
        await store.aput(NS, f"k{i:02}", {"text": f"shared {words}", "tags": [f"t{i}", "shared"]})
    full = await store.asearch(NS, query="shared w3 w4 w5", limit=40)
    assert len(full) == 40
    pages = []
    for offset in range(0, 40, 6):
        pages.extend(await store.asearch(NS, query="shared w3 w4 w5", limit=6, offset=offset))
    assert [(r.key, r.score) for r in pages] == [(r.key, r.score) for r in full]
    assert await store.asearch(NS, query="shared", limit=5, offset=40) == []


async def test_query_with_filter_and_namespace_prefix(make_store):
    store = await make_store()
    await _put_docs(store)
    await _put_docs(store, ("docsx",))
    await _put_docs(store, ("docs", "sub"))
    results = await store.asearch(NS, query="cats chase mice", filter={"kind": "tech"}, limit=10)
    assert {r.key for r in results} == {"python", "rust"}
    assert {tuple(r.namespace) for r in results} == {("docs",), ("docs", "sub")}
    assert all(r.score is not None for r in results)
    results = await store.asearch(NS, query="birds", filter={"legs": {"$lt": 3}}, limit=10)
    assert [r.key for r in results] == ["birds", "birds"]
    results = await store.asearch(("docs", "sub"), query="code", filter={"tags": ["code", "crab"]})
    assert [(r.key, tuple(r.namespace)) for r in results] == [("rust", ("docs", "sub"))]
    results = await store.asearch(("docs",), query="cats", filter={"kind": "animal", "legs": 4}, limit=10)
    assert {r.key for r in results} == {"cats", "dogs"}
    with pytest.raises(ValueError, match="Invalid filter key"):
        await store.asearch(NS, query="cats", filter={"bad key'": 1})


async def test_batch_mixes_semantic_search_with_other_ops(make_store):
    store = await make_store()
    await _put_docs(store)
    got, found, plain, _ = await store.abatch(
        [
            GetOp(NS, "cats"),
            SearchOp(NS, query="dogs bark", limit=2),
            SearchOp(NS, limit=100),
            PutOp(NS, "new", {"text": "dogs bark loudly"}),
        ]
    )
    assert got.key == "cats"
    assert found[0].key == "dogs" and found[0].score is not None
    assert "new" not in {r.key for r in plain}  # reads see the batch's state before its puts
    assert (await store.asearch(NS, query="dogs bark loudly", limit=1))[0].key == "new"


async def test_sync_api_from_a_worker_thread(make_store):
    store = await make_store()
    await _put_docs(store)
    results = await asyncio.to_thread(store.search, NS, query="birds fly", limit=1)
    assert results[0].key == "birds"


async def test_embeddings_are_computed_before_the_store_is_locked(make_store):
    calls: list[tuple[list[str], bool]] = []
    holder: list[AegraSqliteStore] = []

    async def recording(texts: list[str]) -> list[list[float]]:
        calls.append((list(texts), holder[0].lock.locked()))
        return test_embed.embed(texts)

    store = await make_store({"dims": DIMS, "embed": recording, "fields": ["text"]})
    holder.append(store)
    await store.abatch(
        [
            PutOp(NS, "a", {"text": "cats purr"}),
            PutOp(NS, "b", {"text": "cats purr"}),  # the same text is embedded once
            SearchOp(NS, query="cats"),
        ]
    )
    await store.asearch(NS, query="purr")
    assert calls == [(["cats purr", "cats"], False), (["purr"], False)]
    assert {r.key for r in await store.asearch(NS, query="cats purr")} == {"a", "b"}


async def test_embedding_of_the_wrong_size_fails_the_put(make_store):
    store = await make_store({"dims": DIMS + 1, "embed": test_embed.embed})
    with pytest.raises(ValueError, match=f"store.index.dims is {DIMS + 1}"):
        await store.aput(NS, "x", {"text": "cats"})
    assert await store.aget(NS, "x") is None  # the batch failed as a whole


async def test_without_an_index_query_is_ignored(make_store):
    store = await make_store(index=None)
    await _put_docs(store)
    results = await store.asearch(NS, query="cats", limit=10)
    assert {r.key for r in results} == set(DOCS) and all(r.score is None for r in results)


async def test_whole_value_is_embedded_by_default(make_store):
    store = await make_store({"dims": DIMS, "embed": test_embed.aembed})
    await _put_docs(store)
    results = await store.asearch(NS, query="snake crab", limit=2)  # only in `tags`
    assert {r.key for r in results} == {"python", "rust"}


async def test_reopening_keeps_vectors_and_update_keeps_created_at(make_store, db_path: Path):
    store = await make_store()
    await _put_docs(store)
    _execute(db_path, "UPDATE store SET created_at = '2001-02-03 04:05:06' WHERE key = 'cats'")
    again = await make_store()
    await again.aput(NS, "cats", {"text": "cats purr and chase mice", "v": 2})
    item = await again.aget(NS, "cats")
    assert item.value["v"] == 2
    assert item.created_at.year == 2001 and item.updated_at.year > 2001
    assert (await again.asearch(NS, query="cats chase mice", limit=1))[0].key == "cats"


async def test_search_speed_for_thousands_of_items(make_store):
    store = await make_store()
    ops = [PutOp(NS, f"k{i}", {"text": f"item {i} word{i % 97} other{i % 13}"}) for i in range(3000)]
    for start in range(0, len(ops), 500):
        await store.abatch(ops[start : start + 500])
    started = time.perf_counter()
    results = await store.asearch(NS, query="word42 other3", limit=10)
    elapsed = time.perf_counter() - started
    assert results[0].value["text"].split()[2:] == ["word42", "other3"]
    assert elapsed < 10.0, elapsed


# ---------------------------------------------------------------------------------------------------------
# AegraSqliteStore: TTL


def _expiry(db_path: Path, key: str) -> str | None:
    rows = _rows(db_path, "SELECT expires_at FROM store WHERE key = ?", key)
    return rows[0][0] if rows else None


def _execute(db_path: Path, sql: str, *params) -> None:
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute(sql, params)


def _expire(db_path: Path, *keys: str) -> None:
    for key in keys:
        _execute(db_path, "UPDATE store SET expires_at = '2000-01-01 00:00:00' WHERE key = ?", key)


async def test_ttl_put_refresh_and_sweep(make_store, db_path: Path):
    store = await make_store(ttl={"refresh_on_read": False})
    await store.aput(NS, "short", {"text": "cats"}, ttl=30)
    await store.aput(NS, "kept", {"text": "dogs"}, ttl=30)
    await store.aput(NS, "searched", {"text": "birds"}, ttl=30)
    await store.aput(NS, "forever", {"text": "cats and dogs"})
    assert _rows(db_path, "SELECT ttl_minutes FROM store WHERE key = 'short'") == [(30.0,)]
    assert _expiry(db_path, "short") > time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    assert _expiry(db_path, "forever") is None

    _expire(db_path, "short", "kept", "searched")
    await store.aget(NS, "short")  # refresh_on_read is false: no refresh
    assert _expiry(db_path, "short").startswith("2000")
    await store.aget(NS, "kept", refresh_ttl=True)  # an explicit refresh wins
    assert not _expiry(db_path, "kept").startswith("2000")
    results = await store.asearch(NS, query="birds", refresh_ttl=True, limit=1)
    assert results[0].key == "searched"
    assert not _expiry(db_path, "searched").startswith("2000")

    assert await store.sweep_ttl() == 1
    assert await store.aget(NS, "short") is None
    assert "short" not in _vector_keys(db_path)
    assert {"kept", "searched", "forever"} <= _vector_keys(db_path)


async def test_refresh_on_read_by_default_and_default_ttl(make_store, db_path: Path):
    store = await make_store(ttl={"default_ttl": 15})
    await store.aput(NS, "a", {"text": "cats"})
    await store.aput(NS, "b", {"text": "dogs"}, ttl=None)
    assert _rows(db_path, "SELECT key, ttl_minutes FROM store ORDER BY key") == [("a", 15.0), ("b", None)]
    _expire(db_path, "a")
    await store.asearch(NS, query="cats")  # refresh_on_read defaults to true
    assert not _expiry(db_path, "a").startswith("2000")
    _expire(db_path, "a")
    await store.asearch(NS, refresh_ttl=False)
    assert _expiry(db_path, "a").startswith("2000")


async def test_ttl_without_ttl_config_still_refreshes_and_sweeps(make_store, db_path: Path):
    store = await make_store()
    await store.aput(NS, "a", {"text": "cats"}, ttl=5)
    await store.aput(NS, "b", {"text": "dogs"}, ttl=5)
    _expire(db_path, "a", "b")
    await store.aget(NS, "a")
    assert not _expiry(db_path, "a").startswith("2000")
    assert await store.sweep_ttl() == 1
    assert await store.aget(NS, "b") is None


async def test_the_sweeper_removes_expired_items(make_store, db_path: Path):
    store = await make_store(ttl={"sweep_interval_minutes": 0.005})  # 0.3 s
    await store.aput(NS, "gone", {"text": "cats"}, ttl=5)
    await store.aput(NS, "stays", {"text": "dogs"}, ttl=5)
    _expire(db_path, "gone")
    await store.start_ttl_sweeper()
    deadline = time.monotonic() + 10
    while _rows(db_path, "SELECT 1 FROM store WHERE key = 'gone'"):
        assert time.monotonic() < deadline, "the sweeper did not remove the expired item"
        await asyncio.sleep(0.05)
    assert await store.aget(NS, "stays", refresh_ttl=False) is not None
    assert await store.stop_ttl_sweeper(timeout=5) is True


# ---------------------------------------------------------------------------------------------------------
# open_store


async def test_open_store_on_sqlite_with_index_and_ttl(tmp_path: Path):
    config = _config(
        tmp_path,
        {
            "index": {"dims": DIMS, "embed": f"{GRAPHS / 'embed.py'}:embed", "fields": ["text"]},
            "ttl": {"default_ttl": 10, "sweep_interval_minutes": 1, "refresh_on_read": True},
        },
    )
    url = parse_database_url(f"sqlite:///{tmp_path / 'aegra.db'}")
    async with AsyncExitStack() as stack:
        store = await open_store(config, url, stack)
        assert isinstance(store, AegraSqliteStore)
        assert store.ttl_config == {"refresh_on_read": True, "default_ttl": 10, "sweep_interval_minutes": 1}
        assert store.index_config["fields"] == ["text"]
        sweeper = store._ttl_sweeper_task
        assert sweeper is not None and not sweeper.done()
        await _put_docs(store)
        assert (await store.asearch(NS, query="python programming", limit=1))[0].key == "python"
    assert sweeper.done()  # stopped when the server's stack closed


async def test_open_store_without_store_section(tmp_path: Path):
    config = _config(tmp_path)
    url = parse_database_url(f"sqlite:///{tmp_path / 'aegra.db'}")
    async with AsyncExitStack() as stack:
        store = await open_store(config, url, stack)
        assert store.index_config is None
        assert store.ttl_config == {"refresh_on_read": True}
        await store.aput(NS, "k", {"v": 1}, ttl=1)
        assert (await store.aget(NS, "k")).value == {"v": 1}
        assert store._ttl_sweeper_task is not None


async def test_open_store_refuses_a_missing_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(
        embeddings_module.PROVIDERS, "fakeprovider", Provider("aegra_fake_provider_pkg", "FakeEmbeddings", "model")
    )
    config = _config(tmp_path, _index("fakeprovider:m"))
    async with AsyncExitStack() as stack:
        with pytest.raises(ConfigError, match="pip install aegra-fake-provider-pkg"):
            await open_store(config, parse_database_url(f"sqlite:///{tmp_path / 'a.db'}"), stack)


def test_store_config_keys(tmp_path: Path):
    with pytest.raises(ConfigError, match="store.index"):
        _config(tmp_path, {"index": {"dims": 3, "embed": "./e.py:f", "distance": "cosine"}})
    config = _config(tmp_path, {"ttl": {"sweep_interval_minutes": 0.5, "omit_expired": True}})
    assert json.loads(config.store.ttl.model_dump_json(exclude_none=True)) == {
        "refresh_on_read": True,
        "sweep_interval_minutes": 0.5,
        "omit_expired": True,
    }
