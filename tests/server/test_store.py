"""The long-term memory store over HTTP: items, search, namespaces, validation. Every test works under its own
top-level namespace label, so tests never see each other's items."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import pytest
from langgraph_sdk.errors import UnprocessableEntityError

from tests.server.helpers import tag


async def test_put_get_overwrite(client):
    root = tag()
    await client.store.put_item([root, "prefs"], "theme", {"color": "blue", "size": {"font": 12}})
    item = await client.store.get_item([root, "prefs"], "theme")
    assert item["namespace"] == [root, "prefs"]
    assert item["key"] == "theme"
    assert item["value"] == {"color": "blue", "size": {"font": 12}}
    assert item["created_at"] == item["updated_at"]
    assert datetime.fromisoformat(item["created_at"]).utcoffset() == timedelta(0)  # UTC, and says so

    await client.store.put_item([root, "prefs"], "theme", {"color": "red"})
    again = await client.store.get_item([root, "prefs"], "theme")
    assert again["value"] == {"color": "red"}  # replaced, not merged
    assert again["created_at"] == item["created_at"]
    assert again["updated_at"] >= item["updated_at"]
    # namespaces are exact: the same key under the parent namespace is another item
    assert await client.store.get_item([root], "theme") is None


async def test_wire_statuses(http):
    root = tag()
    put = await http.put("/store/items", json={"namespace": [root], "key": "k", "value": {"v": 1}})
    assert put.status_code == 204 and put.content == b""
    got = await http.get("/store/items", params={"namespace": root, "key": "k"})
    assert got.status_code == 200 and got.json()["value"] == {"v": 1}
    missing = await http.get("/store/items", params={"namespace": root, "key": "nope"})
    assert missing.status_code == 200
    assert missing.content == b"null"
    deleted = await http.request("DELETE", "/store/items", json={"namespace": [root], "key": "k"})
    assert deleted.status_code == 204
    assert (await http.get("/store/items", params={"namespace": root, "key": "k"})).json() is None


async def test_delete_item(client):
    root = tag()
    await client.store.put_item([root, "a"], "k", {"v": 1})
    await client.store.put_item([root, "b"], "k", {"v": 2})
    await client.store.delete_item([root, "a"], "k")
    assert await client.store.get_item([root, "a"], "k") is None
    assert (await client.store.get_item([root, "b"], "k"))["value"] == {"v": 2}
    await client.store.delete_item([root, "a"], "k")  # deleting what is gone is fine


async def test_put_with_ttl_and_index_flags(client):
    root = tag()
    await client.store.put_item([root], "ttl", {"v": 1}, ttl=5)
    await client.store.put_item([root], "noindex", {"v": 2}, index=False)
    assert (await client.store.get_item([root], "ttl", refresh_ttl=True))["value"] == {"v": 1}
    assert (await client.store.get_item([root], "noindex"))["value"] == {"v": 2}


async def _fill(client, root: str) -> None:
    for i in range(5):
        await client.store.put_item(
            [root, "docs", "even" if i % 2 == 0 else "odd"], f"doc{i}", {"i": i, "kind": "doc", "meta": {"even": i % 2 == 0}}
        )
    await client.store.put_item([root, "notes"], "n1", {"kind": "note", "i": 99})


async def test_search_by_prefix_filter_and_paging(client):
    root = tag()
    await _fill(client, root)
    everything = (await client.store.search_items([root], limit=100))["items"]
    assert len(everything) == 6
    assert all(set(item) >= {"namespace", "key", "value", "created_at", "updated_at", "score"} for item in everything)
    assert all(item["score"] is None for item in everything)  # no semantic query

    docs = (await client.store.search_items([root, "docs"], limit=100))["items"]
    assert sorted(item["key"] for item in docs) == [f"doc{i}" for i in range(5)]
    odd = (await client.store.search_items([root, "docs", "odd"]))["items"]
    assert sorted(item["key"] for item in odd) == ["doc1", "doc3"]

    notes = (await client.store.search_items([root], filter={"kind": "note"}))["items"]
    assert [item["key"] for item in notes] == ["n1"]
    docs_only = (await client.store.search_items([root], filter={"kind": "doc", "i": 2}, limit=100))["items"]
    assert [item["key"] for item in docs_only] == ["doc2"]
    big = (await client.store.search_items([root, "docs"], filter={"i": {"$gte": 3}}, limit=100))["items"]
    assert sorted(item["key"] for item in big) == ["doc3", "doc4"]

    page1 = (await client.store.search_items([root, "docs"], limit=2))["items"]
    page2 = (await client.store.search_items([root, "docs"], limit=2, offset=2))["items"]
    page3 = (await client.store.search_items([root, "docs"], limit=2, offset=4))["items"]
    assert [len(page1), len(page2), len(page3)] == [2, 2, 1]
    keys = [item["key"] for item in page1 + page2 + page3]
    assert sorted(keys) == [f"doc{i}" for i in range(5)]  # no overlap, nothing lost

    assert (await client.store.search_items([tag()]))["items"] == []


async def test_filters_compare_alike_on_sqlite_and_postgres(client, http):
    """One filter, one answer on either database, as langgraph dev (InMemoryStore) answers where it answers at
    all: comparisons ($gt, $gte, $lt, $lte) match values of the operand's JSON type (numbers as numbers, strings
    by code point) and no others; null, and $ne, count a missing field as null. Postgres compared as text
    (10 < 2, and "true" > 2) and missed missing fields; SQLite cast strings and lists to numbers."""
    root = tag()
    values = {"null": {"a": None}, "one": {"a": 1}, "two_str": {"a": "2"}, "missing": {"b": 1}, "float": {"a": 2.5},
              "true": {"a": True}, "zero": {"a": 0}, "list": {"a": [1, 2]}, "obj": {"a": {"x": 1}}, "ten": {"a": 10},
              "word": {"a": "Zebra"}, "lower": {"a": "apple"}}
    for key, value in values.items():
        await client.store.put_item([root], key, value)

    async def keys(filter: dict) -> list[str]:
        return sorted(item["key"] for item in (await client.store.search_items([root], filter=filter, limit=50))["items"])

    assert await keys({"a": {"$gt": 2}}) == ["float", "ten"]
    assert await keys({"a": {"$gte": 1}}) == ["float", "one", "ten"]
    assert await keys({"a": {"$lt": 3}}) == ["float", "one", "zero"]
    assert await keys({"a": {"$gt": 0, "$lte": 2.5}}) == ["float", "one"]
    assert await keys({"a": {"$gt": "Zebra"}}) == ["lower"]  # code point order: "Z" < "a"
    assert await keys({"a": {"$lt": "b"}}) == ["lower", "two_str", "word"]
    assert await keys({"a": {"$lte": True}}) == ["true"]
    assert await keys({"a": None}) == ["missing", "null"]
    assert await keys({"a": {"$eq": None}}) == ["missing", "null"]
    assert await keys({"a": {"$ne": None}}) == ["float", "list", "lower", "obj", "one", "ten", "true", "two_str", "word", "zero"]
    assert await keys({"a": {"$ne": 1}}) == sorted(set(values) - {"one"})
    assert await keys({"a": 1}) == ["one"] and await keys({"a": 1.0}) == ["one"]
    assert await keys({"a": True}) == ["true"]
    assert await keys({"a": "2"}) == ["two_str"]
    assert await keys({"a": [1, 2]}) == ["list"]
    for operand in (None, [1], {"x": 1}):
        refused = await http.post("/store/items/search", json={"namespace_prefix": [root], "filter": {"a": {"$gt": operand}}})
        assert refused.status_code == 422 and "filter.a" in refused.text, refused.text


async def test_search_matches_a_nested_object_field_by_field(client, http):
    # As in langgraph dev: an object without "$" keys in a filter is a value to match field by field (fields not
    # named are free, lists are whole values, and a field may hold operators); it was refused as "unknown
    # operator 'x'". An object with a "$" key holds operators only.
    root = tag()
    values = {
        "one": {"nested": {"x": 1}},
        "more": {"nested": {"x": 1, "tags": ["a", "b"], "deep": {"z": "q"}}},
        "two": {"nested": {"x": 2}},
        "scalar": {"nested": 1},
        "empty": {"nested": {}},
        "absent": {"other": 1},
    }
    for key, value in values.items():
        await client.store.put_item([root], key, value)

    async def keys(filter: dict) -> list[str]:
        return sorted(item["key"] for item in (await client.store.search_items([root], filter=filter, limit=100))["items"])

    assert await keys({"nested": {"x": 1}}) == ["more", "one"]
    assert await keys({"nested": {"x": 1, "tags": ["a", "b"]}}) == ["more"]
    assert await keys({"nested": {"tags": ["a"]}}) == []
    assert await keys({"nested": {"deep": {"z": "q"}}}) == ["more"]
    assert await keys({"nested": {"x": {"$gte": 2}}}) == ["two"]
    assert await keys({"nested": {}}) == ["empty", "more", "one", "two"]  # any object
    assert await keys({"nested": 1}) == ["scalar"]

    mixed = await http.post("/store/items/search", json={"namespace_prefix": [root], "filter": {"nested": {"$gt": 1, "x": 2}}})
    assert mixed.status_code == 422  # langgraph dev answers 500
    assert "filter.nested" in mixed.json()["detail"] and "'x'" in mixed.json()["detail"]
    bad_key = await http.post("/store/items/search", json={"namespace_prefix": [root], "filter": {"nested": {"a b": 1}}})
    assert bad_key.status_code == 422 and "filter.nested.a b" in bad_key.json()["detail"]


async def test_list_namespaces(client):
    root = tag()
    await _fill(client, root)
    await client.store.put_item([root, "deep", "a", "b", "odd"], "x", {"v": 1})

    found = (await client.store.list_namespaces(prefix=[root]))["namespaces"]
    assert sorted(found) == sorted(
        [[root, "docs", "even"], [root, "docs", "odd"], [root, "notes"], [root, "deep", "a", "b", "odd"]]
    )
    odd = (await client.store.list_namespaces(prefix=[root], suffix=["odd"]))["namespaces"]
    assert sorted(odd) == sorted([[root, "docs", "odd"], [root, "deep", "a", "b", "odd"]])
    shallow = (await client.store.list_namespaces(prefix=[root], max_depth=2))["namespaces"]
    assert sorted(shallow) == sorted([[root, "docs"], [root, "notes"], [root, "deep"]])
    limited = (await client.store.list_namespaces(prefix=[root], limit=2))["namespaces"]
    rest = (await client.store.list_namespaces(prefix=[root], limit=10, offset=2))["namespaces"]
    assert len(limited) == 2 and len(rest) == 2
    assert sorted(limited + rest) == sorted(found)


async def test_namespace_validation(client, http):
    root = tag()
    dotted = await http.put("/store/items", json={"namespace": [root, "has.dot"], "key": "k", "value": {"v": 1}})
    assert dotted.status_code == 422
    assert "has.dot" in dotted.json()["detail"]
    with pytest.raises(UnprocessableEntityError):
        await client.store.put_item([root, ""], "k", {"v": 1})
    dotted_prefix = await http.post("/store/items/search", json={"namespace_prefix": [root, "a.b"]})
    assert dotted_prefix.status_code == 422
    response = await http.put("/store/items", json={"namespace": [], "key": "k", "value": {"v": 1}})
    assert response.status_code == 400  # as langgraph-api answers it; was a 422
    assert response.json()["detail"] == "namespace must not be empty"
    empty_label = await http.get("/store/items", params={"namespace": f"{root}.", "key": "k"})
    assert empty_label.status_code == 422
    # No namespace at all: nothing can be stored there, so a get of it is a mistake, as langgraph-api says (422).
    for params in ({"key": "k"}, {"namespace": "", "key": "k"}):
        no_namespace = await http.get("/store/items", params=params)
        assert no_namespace.status_code == 422 and "namespace" in no_namespace.text, (params, no_namespace.text)
    not_an_object = await http.put("/store/items", json={"namespace": [root], "key": "k", "value": [1, 2]})
    assert not_an_object.status_code == 422
    bad_filter = await http.post("/store/items/search", json={"namespace_prefix": [root], "filter": {"$bad key": 1}})
    assert bad_filter.status_code == 422
    reserved = await http.put("/store/items", json={"namespace": ["langgraph", root], "key": "k", "value": {"v": 1}})
    assert reserved.status_code == 400  # the store's own rule, as langgraph-api answers it; was a 500
    assert reserved.json()["detail"].startswith("namespace: ") and "langgraph" in reserved.json()["detail"]
    assert (await client.store.search_items([root]))["items"] == []


async def test_a_bad_filter_costs_only_its_own_request(http):
    # The store batches concurrent operations; a filter refused inside a batch failed every request in it
    # (other clients' writes answered 500 and were lost). Now it is refused before it joins one.
    root = tag()

    async def put(i: int):
        return await http.put("/store/items", json={"namespace": [root], "key": f"k{i}", "value": {"i": i}})

    async def bad_search(i: int):
        bad = {"a b": 1} if i % 2 else {"a": {"$b": 1}}  # a key SQLite cannot path, an operator no store knows
        return await http.post("/store/items/search", json={"namespace_prefix": [root], "filter": bad})

    for _ in range(5):
        answers = await asyncio.gather(*(f(i) for i in range(10) for f in (put, bad_search)))
        assert [a.status_code for a in answers[0::2]] == [204] * 10, [a.text for a in answers[0::2]]
        assert [a.status_code for a in answers[1::2]] == [422] * 10
    stored = (await http.post("/store/items/search", json={"namespace_prefix": [root], "limit": 100})).json()["items"]
    assert sorted(item["key"] for item in stored) == sorted(f"k{i}" for i in range(10))


async def test_refreshing_ttls_under_concurrent_writes_is_not_lost(http, caplog):
    # A search that refreshes TTLs writes after it reads; begun deferred on SQLite, that write failed with
    # "database is locked" whenever the server's other connection wrote in between, and the refresh was lost.
    root = tag()
    for i in range(5):
        await http.put("/store/items", json={"namespace": [root], "key": f"k{i}", "value": {"i": i}, "ttl": 60})
    caplog.set_level(logging.ERROR, logger="langgraph.store")
    searches = [
        http.post("/store/items/search", json={"namespace_prefix": [root], "refresh_ttl": True}) for _ in range(40)
    ]
    writes = [http.post("/threads", json={"metadata": {"i": i}}) for i in range(40)]
    answers = await asyncio.gather(*(c for pair in zip(searches, writes) for c in pair))
    assert {a.status_code for a in answers} == {200}
    assert not [r.getMessage() for r in caplog.records if "locked" in r.getMessage()]
