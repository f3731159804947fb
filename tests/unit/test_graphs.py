"""aegra_server.graphs: loading graphs from aegra.json, per-run copies, and Studio's introspection."""

from __future__ import annotations

import json
import os
import pickle
import sys
import uuid
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.pregel import Pregel
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from aegra_server.config import AegraConfig, load_config, parse_config
from aegra_server.errors import ConfigError
from aegra_server.graphs import (
    GRAPH_NAMESPACE,
    GraphRegistry,
    UnknownGraphError,
    check_graphs,
    default_assistant_id,
)

from tests.projects import COUNTER_GRAPH  # noqa: E402

GRAPHS_DIR = Path(__file__).resolve().parent.parent / "graphs"
ALL_IDS = [
    "echo", "chat", "hitl", "slow", "subgraph", "custom", "configurable", "context_only", "failing", "factory", "whoami"
]



@pytest.fixture(autouse=True)
def restore_sys_path():
    saved = list(sys.path)
    yield
    sys.path[:] = saved


@pytest.fixture(scope="module")
def registry() -> GraphRegistry:
    saved = list(sys.path)
    try:
        return GraphRegistry.load(load_config(GRAPHS_DIR / "aegra.json"))
    finally:
        sys.path[:] = saved


def project(tmp_path: Path, files: dict[str, str], graphs: dict[str, Any], **extra: Any) -> AegraConfig:
    """A config file in tmp_path with the given source files next to it."""
    for name, text in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(dedent(text), encoding="utf-8")
    data = {"graphs": graphs, **extra}
    config_path = tmp_path / "aegra.json"
    config_path.write_text(json.dumps(data), encoding="utf-8")
    return parse_config(data, config_path)


def load_error(config: AegraConfig) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        GraphRegistry.load(config)
    return caught.value


def module_of(path: Path) -> Any:
    """The module the registry imported for a graph file (registered in sys.modules under its own name)."""
    matches = [m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == str(path)]
    assert len(matches) == 1, matches
    return matches[0]


# ---------------------------------------------------------------------------------------------------------
# Identifiers


def test_default_assistant_id_is_uuid5_in_the_langgraph_namespace() -> None:
    assert GRAPH_NAMESPACE == uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
    assert default_assistant_id("echo") == str(uuid.uuid5(GRAPH_NAMESPACE, "echo"))
    assert default_assistant_id("echo") != default_assistant_id("chat")


# ---------------------------------------------------------------------------------------------------------
# Loading the project's test graphs


def test_loads_every_test_graph_in_config_order(registry: GraphRegistry) -> None:
    assert registry.ids == ALL_IDS
    assert "echo" in registry and "nope" not in registry
    assert len(registry) == len(ALL_IDS)
    assert registry.description("echo") == "Echoes the last message and counts turns"
    assert registry.description("chat") is None
    assert registry.is_factory("factory") and not registry.is_factory("echo")


def test_check_graphs_returns_the_ids() -> None:
    assert check_graphs(load_config(GRAPHS_DIR / "aegra.json")) == ALL_IDS


def test_dependency_folder_is_on_sys_path_once(tmp_path: Path) -> None:
    config = project(tmp_path, {"graph.py": COUNTER_GRAPH}, {"a": "./graph.py:graph"}, dependencies=[".", "./"])
    GraphRegistry.load(config)
    GraphRegistry.load(config)
    assert sys.path.count(str(tmp_path.resolve())) == 1


def test_a_src_layout_wins_over_an_installed_copy_of_the_same_project(tmp_path: Path) -> None:
    """`pip install .` (not -e) leaves a copy in site-packages; the code being edited in src/ is what runs."""
    installed = tmp_path / "site-packages" / "mypkg_src_layout"
    installed.mkdir(parents=True)
    (installed / "__init__.py").write_text("")
    (installed / "graph.py").write_text("raise ImportError('the stale installed copy was imported')\n")
    sys.path.insert(0, str(installed.parent))
    root = tmp_path / "project"
    config = project(
        root,
        {"pyproject.toml": "[project]\nname = 'mypkg'\n", "src/mypkg_src_layout/__init__.py": "",
         "src/mypkg_src_layout/graph.py": COUNTER_GRAPH},
        {"a": "mypkg_src_layout.graph:graph"},
        dependencies=["."],
    )
    try:
        assert GraphRegistry.load(config).ids == ["a"]
        assert sys.modules["mypkg_src_layout.graph"].__file__ == str((root / "src/mypkg_src_layout/graph.py").resolve())
    finally:
        for name in ("mypkg_src_layout", "mypkg_src_layout.graph"):
            sys.modules.pop(name, None)


async def test_unknown_graph_id_raises_a_key_error(registry: GraphRegistry) -> None:
    with pytest.raises(UnknownGraphError, match="nope"):
        await registry.graph("nope")
    with pytest.raises(KeyError):
        registry.description("nope")


# ---------------------------------------------------------------------------------------------------------
# Load failures: one ConfigError naming the graph, the cause and the fix


def test_missing_file(tmp_path: Path) -> None:
    error = load_error(project(tmp_path, {}, {"agent": "./missing.py:graph"}))
    assert error.message.startswith("graph 'agent' (./missing.py:graph) failed to load: FileNotFoundError: ")
    assert "missing.py does not exist" in error.message
    assert "relative paths start from" in error.hint


def test_syntax_error(tmp_path: Path) -> None:
    error = load_error(project(tmp_path, {"broken.py": "def oops(:\n    pass\n"}, {"agent": "./broken.py:graph"}))
    assert error.message.startswith("graph 'agent' (./broken.py:graph) failed to load: SyntaxError: ")
    assert "broken.py" in error.hint and "line 1" in error.hint


def test_missing_module_names_the_module(tmp_path: Path) -> None:
    files = {"needs.py": "import surely_not_installed_pkg_x\n" + COUNTER_GRAPH}
    error = load_error(project(tmp_path, files, {"agent": "./needs.py:graph"}))
    assert error.message.startswith("graph 'agent' (./needs.py:graph) failed to load: ModuleNotFoundError: ")
    assert "surely_not_installed_pkg_x" in error.message
    assert "install" in error.hint and "surely_not_installed_pkg_x" in error.hint


def test_missing_module_reference(tmp_path: Path) -> None:
    error = load_error(project(tmp_path, {}, {"agent": "no_such_pkg_abc.graph:graph"}))
    assert error.message.startswith("graph 'agent' (no_such_pkg_abc.graph:graph) failed to load: ModuleNotFoundError: ")
    assert "no_such_pkg_abc" in error.message
    assert "dependencies" in error.hint


def test_failed_import_is_not_left_in_sys_modules(tmp_path: Path) -> None:
    config = project(tmp_path, {"flaky.py": "raise RuntimeError('not yet')\n"}, {"agent": "./flaky.py:graph"})
    error = load_error(config)
    assert "RuntimeError: not yet" in error.message
    (tmp_path / "flaky.py").write_text(COUNTER_GRAPH, encoding="utf-8")
    assert GraphRegistry.load(config).ids == ["agent"]


def test_missing_attribute_suggests_the_right_name(tmp_path: Path) -> None:
    error = load_error(project(tmp_path, {"graph.py": COUNTER_GRAPH}, {"agent": "./graph.py:grph"}))
    assert error.message == (
        "graph 'agent' (./graph.py:grph) failed to load: AttributeError: ./graph.py has no attribute 'grph'"
    )
    assert error.hint == "did you mean ./graph.py:graph?"


def test_wrong_type(tmp_path: Path) -> None:
    files = {"graph.py": COUNTER_GRAPH + "\nanswer = 42\n"}
    error = load_error(project(tmp_path, files, {"agent": "./graph.py:answer"}))
    assert error.message.startswith("graph 'agent' (./graph.py:answer) failed to load: TypeError: ")
    assert "'answer' is int" in error.message
    assert "compiled graph" in error.hint


def test_a_class_is_not_a_factory(tmp_path: Path) -> None:
    error = load_error(project(tmp_path, {"graph.py": COUNTER_GRAPH}, {"agent": "./graph.py:State"}))
    assert "TypeError: 'State' is the class State" in error.message


def test_factory_with_too_many_arguments(tmp_path: Path) -> None:
    files = {"graph.py": COUNTER_GRAPH + "\ndef make(config, other):\n    return graph\n"}
    error = load_error(project(tmp_path, files, {"agent": "./graph.py:make"}))
    assert "TypeError: factory 'make' requires 2 arguments (config, other)" in error.message


def test_state_graph_that_does_not_compile(tmp_path: Path) -> None:
    files = {"graph.py": COUNTER_GRAPH + "\nempty = StateGraph(State)\n"}
    error = load_error(project(tmp_path, files, {"agent": "./graph.py:empty"}))
    assert error.message.startswith("graph 'agent' (./graph.py:empty) failed to load: ValueError: ")
    assert ".compile()" in error.hint


# ---------------------------------------------------------------------------------------------------------
# What a graph reference may point at


async def test_uncompiled_state_graph_is_compiled(tmp_path: Path) -> None:
    registry = GraphRegistry.load(project(tmp_path, {"graph.py": COUNTER_GRAPH}, {"agent": "./graph.py:builder"}))
    graph = await registry.graph("agent")
    assert isinstance(graph, Pregel)
    assert await graph.ainvoke({"count": 1}) == {"count": 2}


async def test_module_reference_from_a_dependency_folder(tmp_path: Path) -> None:
    files = {"pkg_for_aegra_test/__init__.py": "", "pkg_for_aegra_test/agent.py": COUNTER_GRAPH}
    config = project(tmp_path, files, {"agent": "pkg_for_aegra_test.agent:graph"}, dependencies=["."])
    graph = await GraphRegistry.load(config).graph("agent")
    assert await graph.ainvoke({"count": 5}) == {"count": 6}


async def test_sibling_imports_absolute_and_relative(tmp_path: Path) -> None:
    files = {
        "helpers_for_aegra_test.py": "STEP = 10\n",
        "sibling.py": "STEP = 100\n",
        "graph.py": COUNTER_GRAPH.replace("+ 1", "+ STEP + REL")
        + "\nfrom helpers_for_aegra_test import STEP\nfrom .sibling import STEP as REL\n",
    }
    graph = await GraphRegistry.load(project(tmp_path, files, {"agent": "./graph.py:graph"})).graph("agent")
    assert await graph.ainvoke({"count": 0}) == {"count": 110}


def test_classes_in_graph_files_pickle(tmp_path: Path) -> None:
    note = "\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass Note:\n    text: str\n"
    files = {"graph.py": COUNTER_GRAPH + note}
    GraphRegistry.load(project(tmp_path, files, {"agent": "./graph.py:graph"}))
    value = module_of(tmp_path / "graph.py").Note("hi")
    assert pickle.loads(pickle.dumps(value)) == value


def test_same_file_for_two_graphs_is_imported_once(tmp_path: Path) -> None:
    files = {"graph.py": "IMPORTS = []\nIMPORTS.append(1)\n" + COUNTER_GRAPH}
    GraphRegistry.load(project(tmp_path, files, {"a": "./graph.py:graph", "b": "./graph.py:builder"}))
    assert module_of(tmp_path / "graph.py").IMPORTS == [1]


def test_env_object_does_not_override_the_real_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGRA_TEST_KEEP", "real")
    monkeypatch.delenv("AEGRA_TEST_NEW", raising=False)
    files = {"graph.py": "import os\nSEEN = os.environ.get('AEGRA_TEST_NEW')\n" + COUNTER_GRAPH}
    env = {"AEGRA_TEST_KEEP": "from-config", "AEGRA_TEST_NEW": "from-config"}
    try:
        GraphRegistry.load(project(tmp_path, files, {"a": "./graph.py:graph"}, env=env))
        assert os.environ["AEGRA_TEST_KEEP"] == "real"
        assert os.environ["AEGRA_TEST_NEW"] == "from-config"
        assert module_of(tmp_path / "graph.py").SEEN == "from-config"  # applied before the import
    finally:
        os.environ.pop("AEGRA_TEST_NEW", None)


def test_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGRA_TEST_KEEP", "real")
    monkeypatch.delenv("AEGRA_TEST_FROM_FILE", raising=False)
    files = {"graph.py": COUNTER_GRAPH, ".env.test": "AEGRA_TEST_FROM_FILE=yes\nAEGRA_TEST_KEEP=file\n"}
    try:
        GraphRegistry.load(project(tmp_path, files, {"a": "./graph.py:graph"}, env=".env.test"))
        assert os.environ["AEGRA_TEST_FROM_FILE"] == "yes"
        assert os.environ["AEGRA_TEST_KEEP"] == "real"
    finally:
        os.environ.pop("AEGRA_TEST_FROM_FILE", None)


def test_missing_env_file(tmp_path: Path) -> None:
    error = load_error(project(tmp_path, {"graph.py": COUNTER_GRAPH}, {"a": "./graph.py:graph"}, env=".env.missing"))
    assert ".env.missing" in error.message and "does not exist" in error.message


# ---------------------------------------------------------------------------------------------------------
# Graphs for runs


async def test_graph_is_a_copy_with_checkpointer_and_store(registry: GraphRegistry) -> None:
    saver, store = InMemorySaver(), InMemoryStore()
    graph = await registry.graph("echo", {}, checkpointer=saver, store=store)
    assert graph.checkpointer is saver and graph.store is store
    loaded = module_of(GRAPHS_DIR / "echo.py").graph
    assert loaded.checkpointer is None and loaded.store is None
    plain = await registry.graph("echo")
    assert plain is not graph and plain.checkpointer is None and plain.store is None
    assert graph.name == "echo"  # a graph with langgraph's default name is named after its id, as in langgraph-api
    assert loaded.name == "LangGraph"


async def test_factory_is_called_per_request_with_the_config(registry: GraphRegistry) -> None:
    calls = module_of(GRAPHS_DIR / "factory.py").CALLS
    calls.clear()
    first = await registry.graph("factory", {"configurable": {"prefix": "hey"}}, checkpointer=InMemorySaver())
    second = await registry.graph("factory", {"configurable": {"prefix": "yo"}})
    assert [c["configurable"]["prefix"] for c in calls] == ["hey", "yo"]
    assert first is not second
    out = await first.ainvoke({"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": "t"}})
    assert out["messages"][-1].content == "hey: hi" and out["turns"] == 1
    assert (await second.ainvoke({"messages": [HumanMessage("hi")]}))["messages"][-1].content == "yo: hi"


FACTORIES = """\
from contextlib import asynccontextmanager
from langchain_core.runnables.config import ensure_config

EVENTS = []


def no_args():
    return graph


async def async_factory(config):
    EVENTS.append(("async", config["configurable"].get("tag")))
    return builder


@asynccontextmanager
async def managed(config):
    EVENTS.append("enter")
    try:
        yield graph
    finally:
        EVENTS.append("exit")


def sees_config():
    EVENTS.append(("ambient", ensure_config()["configurable"].get("tag")))
    return graph


def returns_junk(config):
    return "not a graph"
"""


async def test_factory_shapes(tmp_path: Path) -> None:
    names = ("no_args", "async_factory", "managed", "sees_config", "returns_junk")
    graphs = {name: f"./graph.py:{name}" for name in names}
    registry = GraphRegistry.load(project(tmp_path, {"graph.py": COUNTER_GRAPH + FACTORIES}, graphs))
    events = module_of(tmp_path / "graph.py").EVENTS

    assert await (await registry.graph("no_args")).ainvoke({"count": 0}) == {"count": 1}
    assert await (await registry.graph("async_factory", {"configurable": {"tag": "x"}})).ainvoke({"count": 1}) == {
        "count": 2
    }
    await registry.graph("sees_config", {"configurable": {"tag": "ctx"}})
    assert events == [("async", "x"), ("ambient", "ctx")]

    events.clear()
    async with registry.graph_scope("managed", {}, checkpointer=InMemorySaver()) as graph:
        assert events == ["enter"]
        assert graph.checkpointer is not None
    assert events == ["enter", "exit"]

    events.clear()
    await registry.graph("managed")
    assert events == ["enter"]
    await registry.aclose()
    assert events == ["enter", "exit"]

    with pytest.raises(ConfigError, match="returned str"):
        await registry.graph("returns_junk")


# ---------------------------------------------------------------------------------------------------------
# Schemas, drawing, subgraphs


async def test_schemas_of_echo(registry: GraphRegistry) -> None:
    schemas = await registry.schemas("echo", {})
    assert set(schemas) == {
        "graph_id", "input_schema", "output_schema", "state_schema", "config_schema", "context_schema",
    }
    assert schemas["graph_id"] == "echo"
    assert {"messages", "turns", "note"} <= set(schemas["state_schema"]["properties"])
    assert "messages" in schemas["input_schema"]["properties"]
    assert "messages" in schemas["output_schema"]["properties"]
    assert schemas["context_schema"] is None
    assert schemas["config_schema"] == {}
    json.dumps(schemas)  # plain JSON


async def test_schemas_are_cached_but_not_shared(registry: GraphRegistry) -> None:
    first = await registry.schemas("echo", {})
    first["state_schema"]["properties"].clear()
    second = await registry.schemas("echo", {})
    assert "messages" in second["state_schema"]["properties"]


async def test_context_schema(registry: GraphRegistry) -> None:
    schemas = await registry.schemas("configurable", {})
    assert "greeting" in schemas["context_schema"]["properties"]
    assert "greeting" in schemas["config_schema"]["properties"]


async def test_schemas_of_a_factory(registry: GraphRegistry) -> None:
    schemas = await registry.schemas("factory", {"configurable": {"prefix": "p"}})
    assert schemas["graph_id"] == "factory"
    assert {"messages", "turns"} <= set(schemas["state_schema"]["properties"])


async def test_unschematizable_state_becomes_any_not_an_error(tmp_path: Path) -> None:
    files = {
        "graph.py": """\
        from typing_extensions import TypedDict
        from langgraph.graph import END, START, StateGraph


        class Opaque:
            pass


        class State(TypedDict, total=False):
            thing: Opaque
            count: int


        def step(state: State) -> dict:
            return {"count": 1}


        builder = StateGraph(State)
        builder.add_node("step", step)
        builder.add_edge(START, "step")
        builder.add_edge("step", END)
        graph = builder.compile()
        """
    }
    registry = GraphRegistry.load(project(tmp_path, files, {"agent": "./graph.py:graph"}))
    schemas = await registry.schemas("agent")
    assert {"thing", "count"} <= set(schemas["state_schema"]["properties"])
    assert schemas["input_schema"] is None  # pydantic cannot describe Opaque, so langgraph raises


async def test_drawable(registry: GraphRegistry) -> None:
    flat = await registry.drawable("subgraph", {}, xray=False)
    ids = {node["id"] for node in flat["nodes"]}
    assert {"__start__", "child", "after", "__end__"} <= ids
    assert not any("inner_a" in i for i in ids)
    assert {"source": "child", "target": "after"} in flat["edges"]
    for node in flat["nodes"]:
        assert "id" not in node.get("data", {})  # the runnable's class path is dropped, as in langgraph-api

    deep = await registry.drawable("subgraph", {}, xray=True)
    deep_ids = {node["id"] for node in deep["nodes"]}
    assert {"child:inner_a", "child:inner_b"} <= deep_ids
    assert (await registry.drawable("subgraph", {}, xray=1))["nodes"] == deep["nodes"]

    echo = await registry.drawable("echo", {})
    assert {"echo", "tally"} <= {node["id"] for node in echo["nodes"]}
    json.dumps(echo)


async def test_drawable_conditional_edges(registry: GraphRegistry) -> None:
    slow = await registry.drawable("slow", {})
    conditional = [edge for edge in slow["edges"] if edge.get("conditional")]
    assert {(edge["source"], edge["target"]) for edge in conditional} == {("step", "step"), ("step", "__end__")}


async def test_subgraphs(registry: GraphRegistry) -> None:
    found = await registry.subgraphs("subgraph", {}, None, False)
    assert set(found) == {"child"}
    assert {"trail", "value"} <= set(found["child"]["state_schema"]["properties"])
    assert set(found["child"]) == {
        "input_schema", "output_schema", "state_schema", "config_schema", "context_schema",
    }
    assert set(await registry.subgraphs("subgraph", {}, "child", True)) == {"child"}
    assert await registry.subgraphs("subgraph", {}, "elsewhere", False) == {}
    assert await registry.subgraphs("echo", {}, None, False) == {}


# ---------------------------------------------------------------------------------------------------------
# The test graphs behave as the protocol tests expect


async def test_echo_graph(registry: GraphRegistry) -> None:
    graph = await registry.graph("echo", {}, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "echo"}}
    await graph.ainvoke({"messages": [HumanMessage("one")], "note": "n"}, config)
    out = await graph.ainvoke({"messages": [{"role": "user", "content": "two"}]}, config)
    assert [m.content for m in out["messages"]] == ["one", "echo: one", "two", "echo: two"]
    assert out["turns"] == 2 and out["note"] == "n"


async def test_chat_graph_streams_tokens(registry: GraphRegistry) -> None:
    graph = await registry.graph("chat")
    chunks = [
        chunk.content
        async for chunk, _meta in graph.astream({"messages": [HumanMessage("hello")]}, stream_mode="messages")
        if not isinstance(chunk, HumanMessage)
    ]
    assert len(chunks) > 1 and "".join(chunks) == "fake reply to hello"


async def test_hitl_graph_interrupts_and_resumes(registry: GraphRegistry) -> None:
    graph = await registry.graph("hitl", {}, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "hitl"}}
    paused = await graph.ainvoke({"topic": "cats"}, config)
    assert paused["__interrupt__"][0].value == {"question": "approve?", "draft": "draft for cats"}
    done = await graph.ainvoke(Command(resume="yes"), config)
    assert done["decision"] == "yes" and done["messages"][-1] == AIMessage("decision: yes", id=done["messages"][-1].id)


async def test_slow_graph(registry: GraphRegistry) -> None:
    graph = await registry.graph("slow")
    out = await graph.ainvoke({"steps": 3, "delay": 0.01, "label": "x"})
    assert out["log"] == ["x:1", "x:2", "x:3"]
    fast = await graph.ainvoke({"steps": 2, "delay": 30, "label": "y"}, {"configurable": {"delay": 0}})
    assert fast["log"] == ["y:1", "y:2"]


async def test_subgraph_graph(registry: GraphRegistry) -> None:
    out = await (await registry.graph("subgraph")).ainvoke({"value": 1})
    assert out == {"trail": ["inner_a", "inner_b", "after"], "value": 20}


async def test_custom_graph(registry: GraphRegistry) -> None:
    graph = await registry.graph("custom")
    events = [e async for e in graph.astream({"n": 2}, stream_mode="custom")]
    assert events == [{"progress": 1, "of": 2}, {"progress": 2, "of": 2}]


async def test_configurable_graph(registry: GraphRegistry) -> None:
    graph = await registry.graph("configurable")
    assert (await graph.ainvoke({"name": "Ann"}))["greeting"] == "Hello, Ann!"
    assert (await graph.ainvoke({"name": "Ann"}, {"configurable": {"greeting": "Hi"}}))["greeting"] == "Hi, Ann!"
    assert (await graph.ainvoke({}, context={"greeting": "Yo"}))["greeting"] == "Yo, world!"


async def test_failing_graph(registry: GraphRegistry) -> None:
    graph = await registry.graph("failing")
    with pytest.raises(ValueError, match="intentional failure in node boom"):
        await graph.ainvoke({})
