"""Tracing: each target's endpoint and headers from its own variables, and the spans a real graph produces."""

from __future__ import annotations

import base64
import json
import sys

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import ValidationError

from aegra_server.errors import ConfigError
from aegra_server.observability import Observability
from aegra_server.observability.exporter import ExportTarget, export_targets
from aegra_server.observability.runs import RunObserver
from aegra_server.observability.settings import ObservabilitySettings
from aegra_server.observability.tracing import Tracing, user_identity

_VARIABLES = (
    "OTEL_TARGETS", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_SERVICE_NAME", "OTEL_CAPTURE_CONTENT", "LANGFUSE_BASE_URL", "LANGFUSE_HOST", "LANGFUSE_PUBLIC_KEY",
    "LANGFUSE_SECRET_KEY", "PHOENIX_COLLECTOR_ENDPOINT", "PHOENIX_API_KEY", "PHOENIX_PROJECT_NAME",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)


def targets(**env: str) -> list[ExportTarget]:
    return export_targets(ObservabilitySettings(**env))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_langfuse_defaults_to_the_cloud_with_basic_auth() -> None:
    [langfuse] = targets(OTEL_TARGETS="LANGFUSE", LANGFUSE_PUBLIC_KEY="pk-lf-1", LANGFUSE_SECRET_KEY="sk-lf-2")
    assert langfuse.endpoint == "https://cloud.langfuse.com/api/public/otel/v1/traces"
    assert langfuse.headers == {"authorization": basic("pk-lf-1", "sk-lf-2"), "x-langfuse-ingestion-version": "4"}


def test_langfuse_self_hosted_from_base_url_or_the_sdks_host_variable(monkeypatch) -> None:
    keys = {"OTEL_TARGETS": "LANGFUSE", "LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk"}
    [langfuse] = targets(**keys, LANGFUSE_BASE_URL="http://langfuse.internal:3000/")
    assert langfuse.endpoint == "http://langfuse.internal:3000/api/public/otel/v1/traces"
    monkeypatch.setenv("LANGFUSE_HOST", "https://us.cloud.langfuse.com")
    [langfuse] = targets(**keys)
    assert langfuse.endpoint == "https://us.cloud.langfuse.com/api/public/otel/v1/traces"


def test_langfuse_without_keys_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="LANGFUSE_PUBLIC_KEY or LANGFUSE_SECRET_KEY"):
        targets(OTEL_TARGETS="LANGFUSE", LANGFUSE_PUBLIC_KEY="pk")


def test_phoenix_local_by_default_and_bearer_with_a_key() -> None:
    [phoenix] = targets(OTEL_TARGETS="PHOENIX")
    assert phoenix == ExportTarget("PHOENIX", "http://localhost:6006/v1/traces", {})
    [phoenix] = targets(
        OTEL_TARGETS="PHOENIX", PHOENIX_COLLECTOR_ENDPOINT="https://app.phoenix.arize.com/s/me", PHOENIX_API_KEY="k"
    )
    assert phoenix.endpoint == "https://app.phoenix.arize.com/s/me/v1/traces"
    assert phoenix.headers == {"authorization": "Bearer k"}
    [phoenix] = targets(OTEL_TARGETS="PHOENIX", PHOENIX_COLLECTOR_ENDPOINT="http://phoenix:6006/v1/traces")
    assert phoenix.endpoint == "http://phoenix:6006/v1/traces"  # already complete


def test_otlp_from_the_standard_variables() -> None:
    [otlp] = targets(
        OTEL_TARGETS="OTLP",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318/",
        OTEL_EXPORTER_OTLP_HEADERS="x-honeycomb-team=abc%3D%3D, x-dataset = prod",
    )
    headers = {"x-honeycomb-team": "abc==", "x-dataset": "prod"}
    assert otlp == ExportTarget("OTLP", "http://collector:4318/v1/traces", headers)
    [otlp] = targets(OTEL_TARGETS="OTLP", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="https://api.example.com/otlp/traces")
    assert otlp.endpoint == "https://api.example.com/otlp/traces"  # the signal-specific URL is used as is


def test_otlp_needs_an_endpoint_and_well_formed_headers() -> None:
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
        targets(OTEL_TARGETS="OTLP")
    with pytest.raises(ConfigError, match="name=value") as raised:
        targets(
            OTEL_TARGETS="OTLP", OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4318", OTEL_EXPORTER_OTLP_HEADERS="secret-token"
        )
    assert "secret-token" not in str(raised.value)


def test_targets_fan_out_in_order_without_duplicates() -> None:
    names = [
        t.name
        for t in targets(
            OTEL_TARGETS="otlp, Phoenix,CONSOLE,OTLP", OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4318"
        )
    ]
    assert names == ["OTLP", "PHOENIX"]  # CONSOLE prints, it has no endpoint


def test_unknown_target_is_refused_with_the_choices() -> None:
    with pytest.raises(ValidationError, match="DATADOG.*LANGFUSE, PHOENIX, OTLP, CONSOLE"):
        ObservabilitySettings(OTEL_TARGETS="OTLP,DATADOG")


def test_credentials_do_not_show_in_reprs() -> None:
    settings = ObservabilitySettings(
        OTEL_TARGETS="LANGFUSE", LANGFUSE_PUBLIC_KEY="pk", LANGFUSE_SECRET_KEY="sk-lf-hidden"
    )
    assert "sk-lf-hidden" not in repr(settings)
    assert "Basic" not in repr(export_targets(settings))


def test_off_by_default_and_missing_sdk_is_a_config_error(monkeypatch) -> None:
    off = Observability(ObservabilitySettings())
    assert off.tracing is None and off.metrics is None
    monkeypatch.setitem(sys.modules, "aegra_server.observability.tracing", None)  # as if not installed
    with pytest.raises(ConfigError, match="pip install opentelemetry-sdk") as refused:
        Observability(ObservabilitySettings(OTEL_TARGETS="CONSOLE"))
    assert "aegra[otel]" not in str(refused.value)  # PyPI's `aegra` is another project


@pytest.mark.parametrize(
    ("configurable", "identity"),
    [
        ({"langgraph_auth_user_id": "alice"}, "alice"),
        ({"langgraph_auth_user": {"identity": "bob"}}, "bob"),
        ({"langgraph_auth_user": type("User", (), {"identity": "carol"})()}, "carol"),
        ({}, None),
    ],
)
def test_user_identity(configurable, identity) -> None:
    assert user_identity({"configurable": configurable}) == identity


# ---- spans of a real graph --------------------------------------------------------------------------------------


@tool
def lookup(topic: str) -> str:
    """Look a topic up."""
    return f"facts about {topic}"


async def research(state: MessagesState) -> dict:
    facts = await lookup.ainvoke({"topic": "otters"})
    model = GenericFakeChatModel(messages=iter([AIMessage(content=facts, usage_metadata={
        "input_tokens": 3, "output_tokens": 4, "total_tokens": 7})]))
    return {"messages": [await model.ainvoke(state["messages"])]}


def approve(state: MessagesState) -> dict:
    if interrupt("approve?") != "yes":
        raise ValueError("not approved; token=abc123")
    return {}


def build(*nodes) -> object:
    builder = StateGraph(MessagesState)
    previous = START
    for node in nodes:
        builder.add_node(node.__name__, node)
        builder.add_edge(previous, node.__name__)
        previous = node.__name__
    builder.add_edge(previous, END)
    return builder.compile()


@pytest.fixture
def traced() -> tuple[RunObserver, InMemorySpanExporter]:
    tracing = Tracing(ObservabilitySettings(OTEL_TARGETS="CONSOLE"))
    tracing.start()
    memory = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(memory))
    yield RunObserver(tracing), memory
    tracing.shutdown()


RUN = {"run_id": "run-1", "thread_id": "thread-1", "assistant_id": "asst-1", "kwargs": {"request_id": "req-9"}}


async def test_graph_nodes_model_and_tool_become_child_spans(capsys, traced) -> None:
    observer, memory = traced
    config = {"configurable": {"thread_id": "thread-1", "langgraph_auth_user_id": "alice"}}
    with observer.observe(RUN, "researcher", config) as observed:
        await build(research).ainvoke({"messages": [("user", "tell me")]}, config)
        observed.status = "success"
    spans = {span.name: span for span in memory.get_finished_spans()}
    assert set(spans) == {"run researcher", "research", "lookup", "GenericFakeChatModel"}
    run, node, tool_span, model = (spans[n] for n in ("run researcher", "research", "lookup", "GenericFakeChatModel"))
    assert run.parent is None
    assert node.parent.span_id == run.context.span_id
    assert tool_span.parent.span_id == node.context.span_id
    assert model.parent.span_id == node.context.span_id
    for span in spans.values():
        assert span.attributes["aegra.run_id"] == "run-1"
        assert span.attributes["user.id"] == "alice"
        assert span.attributes["session.id"] == "thread-1"
    assert run.attributes["aegra.request_id"] == "req-9"
    assert run.status.status_code == StatusCode.OK
    assert model.attributes["llm.token_count.total"] == 7
    assert tool_span.attributes["output.value"] == "facts about otters"
    # CONSOLE prints one JSON object per span.
    observer.tracing.force_flush()
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert {span["name"] for span in printed} >= set(spans)


async def test_an_interrupt_is_not_an_error_and_a_failure_is(traced) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command

    observer, memory = traced
    graph = build(approve)
    graph.checkpointer = InMemorySaver()
    config = {"configurable": {"thread_id": "t-approve"}}
    with observer.observe(RUN, "approver", config) as observed:
        await graph.ainvoke({"messages": [("user", "go")]}, config)
        observed.status = "success"
    paused = next(s for s in memory.get_finished_spans() if s.name == "approve")
    assert paused.attributes["aegra.interrupted"] is True
    assert paused.status.status_code != StatusCode.ERROR
    memory.clear()

    config = {"configurable": {"thread_id": "t-approve"}}
    with observer.observe(RUN, "approver", config) as observed:
        with pytest.raises(ValueError):
            await graph.ainvoke(Command(resume="no"), config)
        observed.status, observed.error = "error", {"error": "ValueError", "message": "not approved; token=abc123"}
    spans = {s.name: s for s in memory.get_finished_spans()}
    assert spans["approve"].status.status_code == StatusCode.ERROR
    assert spans["run approver"].status.status_code == StatusCode.ERROR
    assert "abc123" not in spans["run approver"].status.description  # redacted
    assert "abc123" not in spans["approve"].status.description


async def test_content_capture_can_be_turned_off() -> None:
    tracing = Tracing(ObservabilitySettings(OTEL_TARGETS="CONSOLE", OTEL_CAPTURE_CONTENT=False))
    tracing.console = False
    tracing.start()
    memory = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(memory))
    try:
        config: dict = {"configurable": {"thread_id": "t"}}
        with RunObserver(tracing).observe(RUN, "researcher", config) as observed:
            await build(research).ainvoke({"messages": [("user", "private words")]}, config)
            observed.status = "success"
    finally:
        tracing.shutdown()
    spans = memory.get_finished_spans()
    assert spans and not any("input.value" in s.attributes or "output.value" in s.attributes for s in spans)
    assert not any("private words" in json.dumps(dict(s.attributes)) for s in spans)
