"""Assistants: the system assistant of each graph, CRUD and versions, search/count/pagination, introspection."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError
from sqlalchemy import create_engine, text

from aegra_server.settings import Settings
from aegra_server.storage.urls import parse_database_url
from tests.server.conftest import HTTP_TIMEOUT, _ServerThread
from tests.server.helpers import default_assistant_id, human, tag, texts, wait_status

GRAPHS_DIR = Path(__file__).resolve().parents[1] / "graphs"

GRAPHS = ["echo", "chat", "hitl", "slow", "subgraph", "custom", "configurable", "context_only", "failing", "factory"]


async def test_system_assistant_per_graph(client):
    for graph_id in GRAPHS:
        assistant = await client.assistants.get(default_assistant_id(graph_id))
        assert assistant["graph_id"] == graph_id
        assert assistant["name"] == graph_id
        assert assistant["metadata"]["created_by"] == "system"
        assert assistant["version"] == 1
    echo = await client.assistants.get(default_assistant_id("echo"))
    assert echo["description"] == "Echoes the last message and counts turns"  # from aegra.json


async def test_studio_lists_graphs_by_created_by_system(client):
    found = await client.assistants.search(metadata={"created_by": "system"}, limit=100)
    by_graph = {a["graph_id"]: a["assistant_id"] for a in found if a["assistant_id"] == default_assistant_id(a["graph_id"])}
    assert by_graph.keys() >= set(GRAPHS)


async def test_assistant_shape(client):
    marker = tag()
    created = await client.assistants.create(
        graph_id="echo",
        config={"configurable": {"k": 1}, "tags": ["t"]},
        metadata={"marker": marker},
        name="My Echo",
        description="described",
    )
    assert set(created) >= {
        "assistant_id", "graph_id", "config", "context", "created_at", "updated_at", "metadata", "version", "name",
        "description",
    }
    uuid.UUID(created["assistant_id"])
    assert created["config"] == {"configurable": {"k": 1}, "tags": ["t"]}
    assert created["context"] == {"k": 1}  # the configurable, mirrored
    assert created["version"] == 1
    assert created["created_at"].endswith("+00:00")
    assert await client.assistants.get(created["assistant_id"]) == created


async def test_an_assistant_created_without_a_name_is_untitled(client):
    # As langgraph-api: only the system assistants are named after their graph (so an MCP tool named after a
    # graph stays that graph's default assistant).
    created = await client.assistants.create(graph_id="echo")
    assert created["name"] == "Untitled"


async def test_create_with_id_and_if_exists(client):
    assistant_id = str(uuid.uuid4())
    first = await client.assistants.create(graph_id="echo", assistant_id=assistant_id, name="first")
    assert first["assistant_id"] == assistant_id
    with pytest.raises(ConflictError):
        await client.assistants.create(graph_id="echo", assistant_id=assistant_id, name="second")
    same = await client.assistants.create(graph_id="chat", assistant_id=assistant_id, name="third", if_exists="do_nothing")
    assert same["name"] == "first" and same["graph_id"] == "echo"


async def test_create_for_unknown_graph_is_404(client):
    with pytest.raises(NotFoundError):
        await client.assistants.create(graph_id="no-such-graph")


async def test_update_makes_a_new_version_and_merges_metadata(client):
    created = await client.assistants.create(graph_id="echo", metadata={"a": 1, "b": 1}, name="v1")
    updated = await client.assistants.update(created["assistant_id"], metadata={"b": 2, "c": 3}, name="v2")
    assert updated["version"] == 2
    assert updated["metadata"] == {"a": 1, "b": 2, "c": 3}
    assert updated["name"] == "v2"
    assert updated["graph_id"] == "echo"  # not given, so unchanged
    assert updated["config"] == created["config"]
    again = await client.assistants.update(created["assistant_id"], config={"configurable": {"x": 1}})
    assert again["version"] == 3 and again["name"] == "v2" and again["config"] == {"configurable": {"x": 1}}
    fetched = await client.assistants.get(created["assistant_id"])
    assert fetched["version"] == 3
    assert fetched["created_at"] == created["created_at"]


async def test_update_can_switch_graph(client):
    created = await client.assistants.create(graph_id="echo")
    updated = await client.assistants.update(created["assistant_id"], graph_id="configurable")
    assert updated["graph_id"] == "configurable"
    output = await client.runs.wait(None, created["assistant_id"], input={"name": "Ann"})
    assert output == {"name": "Ann", "greeting": "Hello, Ann!"}


async def test_update_missing_is_404(client):
    with pytest.raises(NotFoundError):
        await client.assistants.update(str(uuid.uuid4()), metadata={"a": 1})


async def test_versions_and_set_latest(client):
    marker = tag()
    created = await client.assistants.create(graph_id="configurable", config={"configurable": {"greeting": "Hi"}})
    assistant_id = created["assistant_id"]
    await client.assistants.update(assistant_id, config={"configurable": {"greeting": "Yo"}}, metadata={"m": marker})
    await client.assistants.update(assistant_id, config={"configurable": {"greeting": "Hey"}})

    versions = await client.assistants.get_versions(assistant_id)
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert [v["config"]["configurable"]["greeting"] for v in versions] == ["Hey", "Yo", "Hi"]
    assert all(v["assistant_id"] == assistant_id for v in versions)
    assert [v["version"] for v in await client.assistants.get_versions(assistant_id, limit=1, offset=1)] == [2]
    # metadata is merged, so versions 2 and 3 both carry the marker
    tagged = await client.assistants.get_versions(assistant_id, metadata={"m": marker})
    assert [v["version"] for v in tagged] == [3, 2]

    assert (await client.runs.wait(None, assistant_id, input={"name": "A"}))["greeting"] == "Hey, A!"
    latest = await client.assistants.set_latest(assistant_id, 1)
    assert latest["version"] == 1
    assert latest["config"]["configurable"]["greeting"] == "Hi"
    assert (await client.assistants.get(assistant_id))["version"] == 1
    assert (await client.runs.wait(None, assistant_id, input={"name": "A"}))["greeting"] == "Hi, A!"
    # Setting the latest version does not delete the others.
    assert len(await client.assistants.get_versions(assistant_id)) == 3
    with pytest.raises(NotFoundError):
        await client.assistants.set_latest(assistant_id, 99)
    with pytest.raises(NotFoundError):
        await client.assistants.get_versions(str(uuid.uuid4()))


async def test_delete(client):
    created = await client.assistants.create(graph_id="echo")
    await client.assistants.delete(created["assistant_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.get(created["assistant_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.delete(created["assistant_id"])


async def test_delete_status_is_204(http):
    created = (await http.post("/assistants", json={"graph_id": "echo"})).json()
    response = await http.delete(f"/assistants/{created['assistant_id']}")
    assert response.status_code == 204
    assert response.content == b""


async def test_delete_with_threads(client):
    assistant = await client.assistants.create(graph_id="echo")
    mine = (await client.threads.create())["thread_id"]
    other = (await client.threads.create())["thread_id"]
    await client.runs.wait(mine, assistant["assistant_id"], input=human("x"))
    await client.runs.wait(other, "echo", input=human("x"))
    await client.assistants.delete(assistant["assistant_id"], delete_threads=True)
    with pytest.raises(NotFoundError):
        await client.threads.get(mine)
    assert (await client.threads.get(other))["thread_id"] == other


async def _three_tagged(client, marker: str) -> list[dict]:
    made = []
    for name in ("alpha one", "beta two", "gamma three"):
        made.append(
            await client.assistants.create(
                graph_id="echo" if name != "beta two" else "chat",
                name=f"{name} {marker}",
                metadata={"marker": marker, "nested": {"name": name.split()[0], "n": len(made)}},
            )
        )
    return made


async def test_search_filters(client):
    marker = tag()
    alpha, beta, gamma = await _three_tagged(client, marker)
    ids = lambda found: {a["assistant_id"] for a in found}  # noqa: E731
    assert ids(await client.assistants.search(metadata={"marker": marker})) == ids([alpha, beta, gamma])
    assert ids(await client.assistants.search(metadata={"marker": marker}, graph_id="chat")) == {beta["assistant_id"]}
    nested = await client.assistants.search(metadata={"marker": marker, "nested": {"name": "gamma"}})
    assert ids(nested) == {gamma["assistant_id"]}
    assert ids(await client.assistants.search(metadata={"nested": {"n": 0, "name": "alpha"}, "marker": marker})) == {
        alpha["assistant_id"]
    }
    # type-aware: the number 1 does not match the string "1"
    assert await client.assistants.search(metadata={"marker": marker, "nested": {"n": "1"}}) == []
    assert ids(await client.assistants.search(name=f"two {marker}")) == {beta["assistant_id"]}
    assert ids(await client.assistants.search(name=marker)) == ids([alpha, beta, gamma])
    assert await client.assistants.search(name=f"delta {marker}") == []


async def test_search_name_is_case_insensitive(client):
    marker = tag()
    created = await client.assistants.create(graph_id="echo", name=f"Mixed Case {marker}")
    found = await client.assistants.search(name=f"mixed case {marker}")
    assert [a["assistant_id"] for a in found] == [created["assistant_id"]]


async def test_search_sort_limit_offset(client):
    marker = tag()
    alpha, beta, gamma = await _three_tagged(client, marker)
    newest_first = await client.assistants.search(metadata={"marker": marker})
    assert [a["assistant_id"] for a in newest_first] == [gamma["assistant_id"], beta["assistant_id"], alpha["assistant_id"]]
    by_name = await client.assistants.search(metadata={"marker": marker}, sort_by="name", sort_order="asc")
    assert [a["name"].split()[0] for a in by_name] == ["alpha", "beta", "gamma"]
    by_name_desc = await client.assistants.search(metadata={"marker": marker}, sort_by="name", sort_order="desc")
    assert [a["name"].split()[0] for a in by_name_desc] == ["gamma", "beta", "alpha"]
    page = await client.assistants.search(metadata={"marker": marker}, sort_by="created_at", sort_order="asc", limit=2, offset=1)
    assert [a["assistant_id"] for a in page] == [beta["assistant_id"], gamma["assistant_id"]]
    selected = await client.assistants.search(metadata={"marker": marker}, select=["assistant_id", "name"], limit=1)
    assert list(selected[0]) == ["assistant_id", "name"]
    with pytest.raises(UnprocessableEntityError) as refused:
        await client.assistants.search(select=["assistant_id", "password"])
    assert refused.value.response.json()["detail"][0]["loc"] == ["body", "select", 1]


async def test_sort_by_name_ignores_case(client):
    # As in langgraph dev; byte order put every capital first (Beta, Zeta, alpha, beta2).
    marker = tag()
    for name in ("Zeta", "alpha", "Beta", "beta2"):
        await client.assistants.create(graph_id="echo", name=name, metadata={"marker": marker})
    ascending = await client.assistants.search(metadata={"marker": marker}, sort_by="name", sort_order="asc")
    assert [a["name"] for a in ascending] == ["alpha", "Beta", "beta2", "Zeta"]
    descending = await client.assistants.search(metadata={"marker": marker}, sort_by="name", sort_order="desc")
    assert [a["name"] for a in descending] == ["Zeta", "beta2", "Beta", "alpha"]
    # sort_order alone orders by the default field, created_at, as LangGraph Platform's server and the API's
    # documented defaults have it; langgraph dev ignores it.
    oldest_first = await client.assistants.search(metadata={"marker": marker}, sort_order="asc")
    assert [a["name"] for a in oldest_first] == ["Zeta", "alpha", "Beta", "beta2"]


async def test_search_pagination_headers(http):
    marker = tag()
    for _ in range(3):
        await http.post("/assistants", json={"graph_id": "echo", "metadata": {"marker": marker}})
    first = await http.post("/assistants/search", json={"metadata": {"marker": marker}, "limit": 2})
    assert first.headers["X-Pagination-Total"] == "3"
    assert first.headers["X-Pagination-Next"] == "2"
    assert len(first.json()) == 2
    last = await http.post("/assistants/search", json={"metadata": {"marker": marker}, "limit": 2, "offset": 2})
    assert last.headers["X-Pagination-Total"] == "3"
    assert "X-Pagination-Next" not in last.headers
    assert len(last.json()) == 1


async def test_search_object_response_format(client):
    marker = tag()
    made = await _three_tagged(client, marker)
    page = await client.assistants.search(metadata={"marker": marker}, limit=2, response_format="object")
    assert len(page["assistants"]) == 2
    assert page["next"] == "2"
    rest = await client.assistants.search(metadata={"marker": marker}, limit=2, offset=2, response_format="object")
    assert rest["next"] is None
    seen = {a["assistant_id"] for a in page["assistants"] + rest["assistants"]}
    assert seen == {a["assistant_id"] for a in made}


async def test_search_limit_bounds(http):
    assert (await http.post("/assistants/search", json={"limit": 1000})).status_code == 200
    assert (await http.post("/assistants/search", json={"limit": -1})).status_code == 422
    assert (await http.post("/assistants/search", json={"offset": -1})).status_code == 422
    assert (await http.post("/assistants/search", json={"sort_by": "color"})).status_code == 422


async def test_count(client, http):
    marker = tag()
    await _three_tagged(client, marker)
    assert await client.assistants.count(metadata={"marker": marker}) == 3
    assert await client.assistants.count(metadata={"marker": marker}, graph_id="echo") == 2
    assert await client.assistants.count(name=f"gamma three {marker}") == 1
    raw = await http.post("/assistants/count", json={"metadata": {"marker": marker}})
    assert raw.content == b"3"  # a bare integer


async def test_get_graph_drawing(client):
    drawing = await client.assistants.get_graph(default_assistant_id("echo"))
    assert {n["id"] for n in drawing["nodes"]} == {"__start__", "echo", "tally", "__end__"}
    edges = {(e["source"], e["target"]) for e in drawing["edges"]}
    assert edges == {("__start__", "echo"), ("echo", "tally"), ("tally", "__end__")}


async def test_get_graph_xray(client):
    assistant_id = default_assistant_id("subgraph")
    flat = {n["id"] for n in (await client.assistants.get_graph(assistant_id))["nodes"]}
    assert "child" in flat and "child:inner_a" not in flat
    for xray in (True, 1):
        expanded = {n["id"] for n in (await client.assistants.get_graph(assistant_id, xray=xray))["nodes"]}
        assert {"child:inner_a", "child:inner_b", "after"} <= expanded
        assert "child" not in expanded
    assert {n["id"] for n in (await client.assistants.get_graph(assistant_id, xray=False))["nodes"]} == flat


async def test_graph_routes_accept_graph_name(client, http):
    by_id = await client.assistants.get_graph(default_assistant_id("subgraph"), xray=True)
    assert await client.assistants.get_graph("subgraph", xray=True) == by_id
    assert (await client.assistants.get_schemas("configurable"))["graph_id"] == "configurable"
    assert set(await client.assistants.get_subgraphs("subgraph")) == {"child"}
    bad = await http.get("/assistants/echo/graph", params={"xray": "very"})
    assert bad.status_code == 422


async def test_get_schemas(client):
    schemas = await client.assistants.get_schemas(default_assistant_id("configurable"))
    assert schemas["graph_id"] == "configurable"
    assert set(schemas["input_schema"]["properties"]) == {"name", "greeting"}
    assert set(schemas["state_schema"]["properties"]) == {"name", "greeting"}
    assert set(schemas["output_schema"]["properties"]) == {"name", "greeting"}
    assert set(schemas["context_schema"]["properties"]) == {"greeting"}
    assert "greeting" in schemas["config_schema"]["properties"]
    echo = await client.assistants.get_schemas(default_assistant_id("echo"))
    assert {"messages", "turns", "note"} <= set(echo["state_schema"]["properties"])


async def test_get_subgraphs_both_path_forms(client, http):
    assistant_id = default_assistant_id("subgraph")
    everything = await client.assistants.get_subgraphs(assistant_id)
    assert list(everything) == ["child"]
    assert set(everything["child"]["state_schema"]["properties"]) == {"trail", "value"}
    # the SDK puts the namespace in the path
    namespaced = await client.assistants.get_subgraphs(assistant_id, namespace="child")
    assert namespaced == everything
    assert (await http.get(f"/assistants/{assistant_id}/subgraphs/child")).json() == everything
    assert await client.assistants.get_subgraphs(assistant_id, namespace="nothing-here") == {}
    recursed = await client.assistants.get_subgraphs(assistant_id, recurse=True)
    assert list(recursed) == ["child"]
    assert await client.assistants.get_subgraphs(default_assistant_id("echo")) == {}


async def test_factory_graph(client):
    assistant = await client.assistants.create(graph_id="factory", config={"configurable": {"prefix": "made"}})
    output = await client.runs.wait(None, assistant["assistant_id"], input=human("hi"))
    assert texts(output) == ["hi", "made: hi"]
    assert output["turns"] == 1
    # run config reaches the factory too, over the assistant's
    output = await client.runs.wait(None, "factory", input=human("yo"), config={"configurable": {"prefix": "run"}})
    assert texts(output) == ["yo", "run: yo"]
    drawing = await client.assistants.get_graph("factory")
    assert {n["id"] for n in drawing["nodes"]} == {"__start__", "echo", "tally", "__end__"}
    assert "messages" in (await client.assistants.get_schemas("factory"))["state_schema"]["properties"]


async def test_assistant_context_reaches_graph(client):
    assistant = await client.assistants.create(graph_id="configurable", context={"greeting": "Ahoy"})
    assert (await client.runs.wait(None, assistant["assistant_id"], input={"name": "Bo"}))["greeting"] == "Ahoy, Bo!"


async def test_configurable_and_context_are_kept_the_same(client, http):
    by_config = await client.assistants.create(graph_id="configurable", config={"configurable": {"greeting": "A"}})
    assert by_config["context"] == {"greeting": "A"}
    by_context = await client.assistants.create(graph_id="configurable", context={"greeting": "B"}, config={"tags": ["t"]})
    assert by_context["config"] == {"tags": ["t"], "configurable": {"greeting": "B"}}

    # A patch's context replaces the configurable too: the graph reads configurable first, and must see it.
    patched = await client.assistants.update(by_config["assistant_id"], context={"greeting": "C"})
    assert patched["config"]["configurable"] == patched["context"] == {"greeting": "C"}
    assert (await client.runs.wait(None, by_config["assistant_id"], input={"name": "x"}))["greeting"] == "C, x!"
    patched = await client.assistants.update(by_config["assistant_id"], config={"configurable": {"greeting": "D"}})
    assert patched["context"] == {"greeting": "D"}
    kept = await client.assistants.update(by_config["assistant_id"], metadata={"m": 1})
    assert kept["config"]["configurable"] == kept["context"] == {"greeting": "D"}

    # Both at once is refused, as langgraph-api refuses it, and nothing is written.
    both = {"config": {"configurable": {"greeting": "E"}}, "context": {"greeting": "F"}}
    refused = await http.post("/assistants", json={"graph_id": "configurable", **both})
    assert refused.status_code == 400 and "context" in refused.json()["detail"]
    refused = await http.patch(f"/assistants/{by_config['assistant_id']}", json=both)
    assert refused.status_code == 400
    assert (await client.assistants.get(by_config["assistant_id"]))["version"] == kept["version"]
    thread_id = (await client.threads.create())["thread_id"]
    for path in (f"/threads/{thread_id}/runs/wait", "/runs", "/runs/crons", f"/threads/{thread_id}/runs/crons"):
        body = {"assistant_id": "configurable", "input": {}, "schedule": "0 0 * * *", **both}
        refused = await http.post(path, json=body)
        assert refused.status_code == 400, path
    assert await client.runs.list(thread_id) == []


async def test_a_runs_configurable_reaches_a_graph_that_reads_context(client):
    # The run's configurable fills its context, and the graph gets only the keys its (dataclass) schema names.
    output = await client.runs.wait(
        None, "context_only", input={"name": "y"}, config={"configurable": {"greeting": "G", "other": 1}}
    )
    assert output["greeting"] == "G, y!"
    output = await client.runs.wait(None, "context_only", input={"name": "z"}, context={"greeting": "H", "other": 2})
    assert output["greeting"] == "H, z!"


async def test_introspection_of_missing_assistant_is_404(client):
    with pytest.raises(NotFoundError):
        await client.assistants.get_graph(str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        await client.assistants.get_schemas(str(uuid.uuid4()))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'aegra.db'}"
        return
    from tests.postgres import fresh_database

    with fresh_database(request.getfixturevalue("pg_server"), prefix="aegra_defaults") as url:
        yield url


async def test_a_graph_removed_from_the_config_loses_its_default_assistant_not_the_ones_people_made(
    empty_database, tmp_path
):
    """As langgraph-api at start: the system assistant of a graph no longer served would be listed and fail."""
    config = tmp_path / "aegra.json"

    async def serving(graphs: list[str], action):
        config.write_text(json.dumps({"graphs": {g: f"{GRAPHS_DIR / 'echo.py'}:graph" for g in graphs}}))
        server = _ServerThread(Settings(AEGRA_CONFIG=config, DATABASE_URL=empty_database))
        server.start()
        sdk = get_client(url=server.url, api_key=None, timeout=HTTP_TIMEOUT)
        try:
            return await action(sdk)
        finally:
            await sdk.http.client.aclose()
            server.stop()

    async def make_own(sdk):
        return (await sdk.assistants.create(graph_id="gone", name="mine"))["assistant_id"]

    mine = await serving(["kept", "gone"], make_own)

    async def listed(sdk):
        return {(a["graph_id"], a["assistant_id"]) for a in await sdk.assistants.search(limit=100)}

    assert await serving(["kept"], listed) == {
        ("kept", default_assistant_id("kept")),
        ("gone", mine),  # made by someone: kept, though its graph is not served now
    }
    # Back in the config, the graph gets its default assistant again.
    assert ("gone", default_assistant_id("gone")) in await serving(["kept", "gone"], listed)


async def test_a_run_whose_assistant_goes_before_it_starts_ends_interrupted(client, database_url):
    """A run made while the delete of its assistant stops the others (the window between the two): deleted here by
    another client on the database, after the run was queued. It ends interrupted, as the delete would have left
    it, not in an error without a cause (the concurrency soak met that once)."""
    assistant = await client.assistants.create(graph_id="slow")
    thread_id = (await client.threads.create())["thread_id"]
    first = await client.runs.create(thread_id, "slow", input={"steps": 2, "delay": 0.3, "label": "f"})
    queued = await client.runs.create(
        thread_id, assistant["assistant_id"], input={"steps": 1, "label": "q"}, multitask_strategy="enqueue"
    )
    engine = create_engine(parse_database_url(database_url).sqlalchemy_sync)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM assistants WHERE assistant_id = :id"), {"id": assistant["assistant_id"]})
    engine.dispose()
    await client.runs.join(thread_id, first["run_id"])
    await wait_status(client, thread_id, queued["run_id"], "interrupted")
    assert (await client.threads.get(thread_id))["status"] == "idle"
    assert "q:1" not in (await client.threads.get_state(thread_id))["values"]["log"]


async def test_deleting_an_assistant_stops_its_runs(client):
    """As langgraph-api: its running and queued runs are interrupted first (the queued one used to end in a
    detail-less error, leaving its thread in error, and the running one finished for a deleted assistant)."""
    assistant = await client.assistants.create(graph_id="slow", config={"configurable": {"delay": 0.1}})
    thread_id = (await client.threads.create())["thread_id"]
    running = await client.runs.create(thread_id, assistant["assistant_id"], input={"steps": 50, "label": "a"})
    queued = await client.runs.create(
        thread_id, assistant["assistant_id"], input={"steps": 1, "label": "q"}, multitask_strategy="enqueue"
    )
    await wait_status(client, thread_id, running["run_id"], "running")
    await client.assistants.delete(assistant["assistant_id"])
    assert (await client.runs.get(thread_id, running["run_id"]))["status"] == "interrupted"
    assert (await client.runs.get(thread_id, queued["run_id"]))["status"] == "interrupted"
    assert (await client.threads.get(thread_id))["status"] != "error"
    assert len((await client.threads.get_state(thread_id))["values"]["log"]) < 50
    output = await client.runs.wait(thread_id, "slow", input={"steps": 1, "delay": 0, "label": "after"})
    assert output["log"][-1] == "after:1"  # the thread goes on with another assistant
