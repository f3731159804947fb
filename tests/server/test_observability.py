"""Observability against a real server: request ids, spans at real OTLP receivers, correlated logs, metrics.

One server for the module, with metrics on and spans fanned out to three local receivers standing in for
Langfuse, Phoenix and a generic OTLP collector, each configured from its own variables. The graphs are in
tests/server/observed/: `weather` logs, calls a tool and a fake chat model; `slow` sleeps.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aegra_server.observability.settings import ObservabilitySettings
from aegra_server.settings import Settings
from tests.server.observability_helpers import (
    AppServer,
    OTLPReceiver,
    ReceivedSpan,
    captured_logs,
    wait_for,
)

OBSERVED = Path(__file__).parent / "observed" / "aegra.json"
LEAKY_KEY = "sk-test-0123456789abcdefghij"  # what observed/weather.py logs, and no log line may show
STATUS_OK, STATUS_ERROR = 1, 2  # opentelemetry.proto Status.StatusCode
SPAN_KIND_SERVER = 2


@pytest.fixture(scope="module")
def receivers() -> Iterator[dict[str, OTLPReceiver]]:
    started = {name: OTLPReceiver().start() for name in ("LANGFUSE", "PHOENIX", "OTLP")}
    yield started
    for receiver in started.values():
        receiver.stop()


@pytest.fixture(scope="module")
def server(receivers, tmp_path_factory) -> Iterator[AppServer]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export every 0.1 s instead of 5 s
        observability = ObservabilitySettings(
            ENABLE_METRICS=True,
            OTEL_TARGETS="langfuse, PHOENIX,OTLP",
            LANGFUSE_BASE_URL=receivers["LANGFUSE"].url,
            LANGFUSE_PUBLIC_KEY="pk-lf-test",
            LANGFUSE_SECRET_KEY="sk-lf-secret",
            PHOENIX_COLLECTOR_ENDPOINT=receivers["PHOENIX"].url,
            PHOENIX_API_KEY="phx-secret",
            PHOENIX_PROJECT_NAME="aegra-tests",
            OTEL_EXPORTER_OTLP_ENDPOINT=receivers["OTLP"].url,
            OTEL_EXPORTER_OTLP_HEADERS="x-collector-token=otlp%20token,x-team=ops",
        )
        settings = Settings(
            AEGRA_CONFIG=OBSERVED,
            DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('observed') / 'aegra.db'}",
            AEGRA_HEARTBEAT_SECONDS=0.5,
            observability=observability,
        )
        with AppServer(settings) as running:
            yield running


@pytest.fixture
def http(server: AppServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def new_thread(http: httpx.Client) -> str:
    return http.post("/threads", json={}).json()["thread_id"]


def ask(http: httpx.Client, text: str, request_id: str, thread_id: str | None = None) -> tuple[str, dict]:
    """A run of `weather` to completion; returns (run id, its output)."""
    thread_id = thread_id or new_thread(http)
    response = http.post(
        f"/threads/{thread_id}/runs/wait",
        json={"assistant_id": "weather", "input": {"messages": [{"role": "user", "content": text}]}},
        headers={"X-Request-ID": request_id},
    )
    assert response.status_code == 200, response.text
    run_id = response.headers["content-location"].rsplit("/", 1)[-1]
    return run_id, response.json()


def spans_of_run(receiver: OTLPReceiver, run_id: str) -> list[ReceivedSpan]:
    """Every span of the trace the run belongs to, once the run's span has arrived."""

    def arrived() -> list[ReceivedSpan]:
        spans = receiver.spans()
        runs = [s for s in spans if s.name.startswith("run ") and s.attributes.get("aegra.run_id") == run_id]
        if not runs:
            return []
        run_span = runs[0]
        trace = [s for s in spans if s.trace_id == run_span.trace_id]
        # the request span ends after the run's; wait for it too
        return trace if any(s.kind == SPAN_KIND_SERVER for s in trace) else []

    return wait_for(arrived, what=f"spans of run {run_id}")


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    matching = [s for s in spans if s.name == name]
    assert len(matching) == 1, (name, [s.name for s in spans])
    return matching[0]


# ---- request ids ---------------------------------------------------------------------------------------------


def test_request_id_is_echoed(http):
    response = http.get("/info", headers={"X-Request-ID": "client-chosen-42"})
    assert response.headers["x-request-id"] == "client-chosen-42"


def test_request_id_is_generated_when_missing_or_unfit(http):
    generated = http.get("/info").headers["x-request-id"]
    assert uuid.UUID(generated).version == 4
    forged = http.get("/info", headers={"X-Request-ID": "x" * 500}).headers["x-request-id"]
    assert uuid.UUID(forged).version == 4
    spaced = http.get("/info", headers={"X-Request-ID": "two words"}).headers["x-request-id"]
    assert spaced != "two words"


def test_request_id_on_errors_and_preflights(http):
    assert "x-request-id" in http.get(f"/threads/{uuid.uuid4()}").headers  # a 404
    preflight = http.options(
        "/threads", headers={"Origin": "https://example.com", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.headers["x-request-id"]


# ---- traces --------------------------------------------------------------------------------------------------


def test_each_target_gets_its_endpoint_and_only_its_own_credentials(http, receivers):
    run_id, _ = ask(http, "weather tomorrow?", "headers-1")
    for receiver in receivers.values():
        spans_of_run(receiver, run_id)
    langfuse = receivers["LANGFUSE"].requests[-1]
    assert langfuse.path == "/api/public/otel/v1/traces"
    assert langfuse.headers["authorization"] == "Basic " + base64.b64encode(b"pk-lf-test:sk-lf-secret").decode()
    assert langfuse.headers["x-langfuse-ingestion-version"] == "4"
    assert langfuse.headers["content-type"] == "application/x-protobuf"
    phoenix = receivers["PHOENIX"].requests[-1]
    assert phoenix.path == "/v1/traces"
    assert phoenix.headers["authorization"] == "Bearer phx-secret"
    otlp = receivers["OTLP"].requests[-1]
    assert otlp.path == "/v1/traces"
    assert otlp.headers["x-collector-token"] == "otlp token"
    assert otlp.headers["x-team"] == "ops"
    # Fanning out must not hand one backend's credentials to another.
    assert "authorization" not in otlp.headers
    for request in (langfuse, phoenix):
        assert "x-collector-token" not in request.headers and "x-team" not in request.headers
    assert "x-langfuse-ingestion-version" not in phoenix.headers


def test_a_run_is_traced_under_its_request_with_nodes_model_and_tool(http, receivers):
    thread_id = new_thread(http)
    run_id, output = ask(http, "weather tomorrow?", "trace-me-1", thread_id)
    assert output["messages"][-1]["content"] == "Tomorrow: sunny in Paris"
    names_per_target = []
    for receiver in receivers.values():
        spans = spans_of_run(receiver, run_id)
        names_per_target.append(sorted(s.name for s in spans))

        request = one(spans, "POST /threads/{thread_id}/runs/wait")
        assert request.kind == SPAN_KIND_SERVER and request.parent_span_id == ""
        assert request.attributes["http.route"] == "/threads/{thread_id}/runs/wait"
        assert request.attributes["http.response.status_code"] == 200
        assert request.attributes["aegra.request_id"] == "trace-me-1"

        run = one(spans, "run weather")
        assert run.parent_span_id == request.span_id
        assert run.status_code == STATUS_OK
        ids = {
            "aegra.run_id": run_id,
            "aegra.thread_id": thread_id,
            "aegra.assistant_id": str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "weather")),
            "aegra.graph_id": "weather",
            "session.id": thread_id,
        }
        expected = {**ids, "aegra.request_id": "trace-me-1", "aegra.run.status": "success"}
        assert run.attributes.items() >= expected.items()
        assert run.resource["service.name"] == "aegra"
        assert run.resource["openinference.project.name"] == "aegra-tests"

        node = one(spans, "agent")
        assert node.parent_span_id == run.span_id
        assert node.attributes["aegra.node"] == "agent"
        assert node.attributes["openinference.span.kind"] == "CHAIN"
        assert "weather tomorrow?" in node.attributes["input.value"]

        tool = one(spans, "forecast")
        assert tool.parent_span_id == node.span_id
        assert tool.attributes["openinference.span.kind"] == "TOOL"
        assert tool.attributes["langfuse.observation.type"] == "tool"
        assert "Paris" in tool.attributes["input.value"]
        assert tool.attributes["output.value"] == "sunny in Paris"

        model = one(spans, "GenericFakeChatModel")
        assert model.parent_span_id == node.span_id
        assert model.attributes["langfuse.observation.type"] == "generation"
        assert model.attributes["gen_ai.usage.input_tokens"] == 11
        assert model.attributes["gen_ai.usage.output_tokens"] == 7
        assert "Tomorrow: sunny in Paris" in model.attributes["output.value"]

        for span in (node, tool, model):
            assert span.attributes.items() >= ids.items(), span.name
        # The secret the graph logged appears in no span.
        assert not any(LEAKY_KEY in json.dumps(s.attributes) for s in spans)
    assert names_per_target[0] == names_per_target[1] == names_per_target[2]


def test_a_failing_run_has_an_error_span(http, receivers):
    run_id, output = ask(http, "please fail", "trace-fail-1")
    assert output["__error__"]["error"] == "RuntimeError"
    spans = spans_of_run(receivers["OTLP"], run_id)
    run = one(spans, "run weather")
    assert run.status_code == STATUS_ERROR
    assert "the weather service is down" in run.status_message
    assert run.attributes["aegra.run.status"] == "error"
    node = one(spans, "agent")
    assert node.status_code == STATUS_ERROR and "exception" in node.events


def test_a_queued_run_joins_the_trace_of_the_request_that_created_it(http, receivers):
    """A run that waits behind another starts from the claim loop, not from the request's task; it still
    carries the request's id and trace."""
    thread_id = new_thread(http)
    http.post(f"/threads/{thread_id}/runs", json={"assistant_id": "slow", "input": {"seconds": 0.5}})
    created = http.post(
        f"/threads/{thread_id}/runs",
        json={"assistant_id": "weather", "input": {"messages": [{"role": "user", "content": "queued"}]}},
        headers={"X-Request-ID": "queued-trace-1"},
    )
    run_id = created.json()["run_id"]
    assert created.json()["status"] == "pending"
    spans = spans_of_run(receivers["OTLP"], run_id)
    request = one(spans, "POST /threads/{thread_id}/runs")
    run = one(spans, "run weather")
    assert run.parent_span_id == request.span_id
    assert run.attributes["aegra.request_id"] == "queued-trace-1"


# ---- logs ----------------------------------------------------------------------------------------------------


def log_lines(buffer) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_access_line_per_request_and_run_lines_carry_the_request_id(http):
    with captured_logs() as buffer:
        thread_id = new_thread(http)
        http.post(f"/threads/{thread_id}/runs", json={"assistant_id": "slow", "input": {"seconds": 0.3}})
        created = http.post(
            f"/threads/{thread_id}/runs",
            json={"assistant_id": "weather", "input": {"messages": [{"role": "user", "content": "logs"}]}},
            headers={"X-Request-ID": "log-corr-1"},
        ).json()
        http.get(f"/threads/{thread_id}/runs/{created['run_id']}/join")
        for probe in ("/ok", "/health", "/ready"):
            http.get(probe)

        def weather_lines():
            lines = log_lines(buffer)
            return lines if sum(line["logger"] == "tests.weather" for line in lines) >= 2 else None

        lines = wait_for(weather_lines, what="the run's log lines")

    access = [line for line in lines if line["logger"] == "aegra.access"]
    creation = [line for line in access if line["request_id"] == "log-corr-1"]
    assert len(creation) == 1
    assert creation[0]["method"] == "POST"
    assert creation[0]["path"] == f"/threads/{thread_id}/runs"
    assert creation[0]["status"] == 200
    assert isinstance(creation[0]["duration_ms"], float)
    assert creation[0]["message"].startswith(f"POST /threads/{thread_id}/runs 200 ")
    # Excluded probes leave no line; every other request leaves exactly one.
    assert not [line for line in access if line["path"] in ("/ok", "/health", "/ready")]
    assert len({line["request_id"] for line in access}) == len(access) == 4  # thread, 2 runs, join

    run_lines = [line for line in lines if line["logger"] == "tests.weather"]
    for line in run_lines:
        assert line["request_id"] == "log-corr-1"  # the run waited behind another and ran from the claim loop
        assert line["run_id"] == created["run_id"] and line["thread_id"] == thread_id
        assert line["graph_id"] == "weather"
    assert LEAKY_KEY not in buffer.getvalue()
    assert any("api_key=***" in line["message"] for line in run_lines)


# ---- metrics -------------------------------------------------------------------------------------------------


def scrape(http: httpx.Client) -> dict[tuple[str, tuple], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_and_runs(http):
    before = scrape(http)
    ask(http, "metrics", "metrics-1")
    ask(http, "metrics fail", "metrics-2")
    after = scrape(http)
    route = {"method": "POST", "route": "/threads/{thread_id}/runs/wait"}
    assert value(after, "aegra_http_requests_total", **route, status="200") - value(
        before, "aegra_http_requests_total", **route, status="200"
    ) == 2
    assert value(after, "aegra_http_request_duration_seconds_count", **route) >= 2
    assert value(after, "aegra_http_requests_total", method="POST", route="/threads", status="200") >= 2
    for status in ("success", "error"):
        assert value(after, "aegra_runs_total", status=status) - value(before, "aegra_runs_total", status=status) == 1
    assert value(after, "aegra_run_duration_seconds_count", graph_id="weather", status="success") >= 1
    assert value(after, "aegra_db_pool_size", pool="tables_reader") == 4
    assert value(after, "aegra_db_pool_size", pool="tables_writer") == 1
    assert ("aegra_db_pool_checked_out", (("pool", "tables_reader"),)) in after
    assert value(after, "process_resident_memory_bytes") > 0


def test_unmatched_paths_share_one_label(http):
    http.get("/no/such/thing")
    samples = scrape(http)
    assert value(samples, "aegra_http_requests_total", method="GET", route="unmatched", status="404") >= 1
    assert not any("/no/such/thing" in str(key) for key in samples)


def test_queue_depth_and_oldest_pending_age(http):
    thread_id = new_thread(http)
    first = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": "slow", "input": {"seconds": 1.5}}).json()
    queued = [
        http.post(f"/threads/{thread_id}/runs", json={"assistant_id": "slow", "input": {"seconds": 0}}).json()
        for _ in range(2)
    ]
    time.sleep(0.3)
    samples = scrape(http)
    assert value(samples, "aegra_runs_pending") >= 2
    assert value(samples, "aegra_runs_oldest_pending_age_seconds") >= 0.2
    assert value(samples, "aegra_runs_executing") >= 1
    for run in (first, *queued):
        http.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
    assert value(scrape(http), "aegra_runs_pending") == 0
    assert value(scrape(http), "aegra_runs_oldest_pending_age_seconds") == 0


def test_active_sse_streams(http, server):
    thread_id = new_thread(http)
    with httpx.Client(base_url=server.url, timeout=30) as streamer:
        with streamer.stream(
            "POST",
            f"/threads/{thread_id}/runs/stream",
            json={"assistant_id": "slow", "input": {"seconds": 1.5}, "stream_mode": ["values"]},
        ) as stream:
            chunks = stream.iter_bytes()
            next(chunks)  # the stream is open
            assert value(scrape(http), "aegra_sse_streams_active") == 1
            for _ in chunks:
                pass
    wait_for(lambda: value(scrape(http), "aegra_sse_streams_active") == 0, what="the stream gauge to drop")


# ---- probes --------------------------------------------------------------------------------------------------


def test_ready_and_health_check_every_part(http):
    for path in ("/health", "/ready"):
        response = http.get(path)
        assert response.status_code == 200
        assert response.json() == {
            "status": "healthy",
            "checks": {"database": "ok", "checkpointer": "ok", "store": "ok"},
        }
