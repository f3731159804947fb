"""When parts fail: probes name the broken part, dead collectors cost runs nothing, /metrics is off by default.

Each test that breaks something gets a server of its own, so the shared servers stay healthy.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aegra_server.observability.settings import ObservabilitySettings
from aegra_server.settings import Settings
from tests.server.observability_helpers import AppServer, captured_logs, unused_port

OBSERVED = Path(__file__).parent / "observed" / "aegra.json"


def observed_settings(tmp_path: Path, **observability: object) -> Settings:
    return Settings(
        AEGRA_CONFIG=OBSERVED,
        DATABASE_URL=f"sqlite:///{tmp_path / 'aegra.db'}",
        observability=ObservabilitySettings(**observability),
    )


@pytest.mark.parametrize("part", ["store", "checkpointer"])
def test_a_broken_part_is_named_in_a_503(tmp_path, part):
    with AppServer(observed_settings(tmp_path)) as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/ready").status_code == 200
        services = server.app.state.services
        # Close that part's own database connection, as a lost connection would leave it.
        asyncio.run(getattr(services, part).conn.close())
        for path in ("/health", "/ready"):
            response = http.get(path)
            assert response.status_code == 503, path
            body = response.json()
            assert body["status"] == "unhealthy"
            assert body["failing"] == [part]
            assert body["checks"][part].startswith("failed: ")
            assert {k: v for k, v in body["checks"].items() if k != part} == {
                name: "ok" for name in ("database", "checkpointer", "store") if name != part
            }
        assert http.get("/ok").status_code == 200  # liveness touches no database
        # ... unless asked to, as langgraph-api's probes ask: then a 500 that names the part.
        response = http.get("/ok", params={"check_db": 1})
        assert response.status_code == 500
        assert response.json() == {"ok": False, "services": {
            name: "unhealthy" if name == part else "healthy" for name in ("database", "checkpointer", "store")
        }}


def test_an_unexpected_error_is_a_500_with_the_request_id_in_header_and_log(tmp_path):
    import json
    import uuid

    with AppServer(observed_settings(tmp_path)) as server, httpx.Client(base_url=server.url) as http:
        asyncio.run(server.app.state.services.repos.db.close())  # our tables' database is gone
        with captured_logs() as logs:
            response = http.get(f"/threads/{uuid.uuid4()}", headers={"X-Request-ID": "boom-1"})
        assert response.status_code == 500
        assert response.json() == {"detail": "Internal server error"}
        assert response.headers["x-request-id"] == "boom-1"
        assert http.get("/health").json()["failing"] == ["database"]
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    error = [line for line in lines if line["level"] == "ERROR"]
    assert len(error) == 1 and error[0]["request_id"] == "boom-1" and "exception" in error[0]
    access = [line for line in lines if line["logger"] == "aegra.access"]
    assert [(line["status"], line["request_id"]) for line in access] == [(500, "boom-1")]


async def test_metrics_is_404_unless_enabled(http):
    """The shared server runs with the defaults: no /metrics route, no tracing."""
    response = await http.get("/metrics")
    assert response.status_code == 404
    assert "x-request-id" in response.headers  # logging and request ids are always on


@pytest.fixture
def silent_collector() -> Iterator[str]:
    """A collector that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_dead_collectors_neither_slow_nor_fail_a_run(tmp_path, silent_collector, monkeypatch):
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # export during the runs, not after them
    settings = observed_settings(
        tmp_path,
        OTEL_TARGETS="OTLP,PHOENIX",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{unused_port()}",  # nobody listens: refused
        PHOENIX_COLLECTOR_ENDPOINT=silent_collector,  # accepts, never answers: times out
    )
    with captured_logs() as logs:
        with AppServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            for attempt in range(3):
                thread_id = http.post("/threads", json={}).json()["thread_id"]
                started = time.monotonic()
                response = http.post(
                    f"/threads/{thread_id}/runs/wait",
                    json={"assistant_id": "weather", "input": {"messages": [{"role": "user", "content": "hi"}]}},
                )
                elapsed = time.monotonic() - started
                assert response.status_code == 200
                assert response.json()["messages"][-1]["content"] == "Tomorrow: sunny in Paris"
                assert elapsed < 2.0, f"run {attempt} took {elapsed:.2f} s"
                time.sleep(0.1)  # let an export attempt happen between runs
            stopping = time.monotonic()
        stopped_in = time.monotonic() - stopping
    # Shutting down waits for the last export at most the export timeout, not once per span or target.
    assert stopped_in < 12, stopped_in
    warnings = [line for line in logs.getvalue().splitlines() if "could not export spans to OTLP" in line]
    assert len(warnings) == 1, logs.getvalue()  # said once, not once per batch


@pytest.mark.postgres
def test_pool_metrics_on_postgres(pg_server):
    """On Postgres, /metrics shows our tables' SQLAlchemy pool and the checkpointer's and store's psycopg pools."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.postgres import fresh_database

    with fresh_database(pg_server, prefix="aegra_metrics") as url:
        metrics_on = ObservabilitySettings(ENABLE_METRICS=True)
        settings = Settings(
            AEGRA_CONFIG=OBSERVED, DATABASE_URL=url, observability=metrics_on, AEGRA_POSTGRES_CONNECTIONS=22
        )
        with AppServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            thread_id = http.post("/threads", json={}).json()["thread_id"]
            http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "slow", "input": {"seconds": 0}})
            text = http.get("/metrics").text
    sizes = {
        sample.labels["pool"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "aegra_db_pool_size"
    }
    assert sizes == {"tables": 8, "checkpointer": 8, "store": 4}  # 22 less the signal bus's 2, as sized
    assert 'aegra_db_pool_checked_out{pool="checkpointer"}' in text
