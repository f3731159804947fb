"""Probes, server info, docs, and the HTTP conventions every route shares: body parsing, error shapes, CORS."""

from __future__ import annotations

import gc
import json
import uuid

import httpx
import pytest
from langgraph_sdk.errors import NotFoundError

from aegra_server.app import GC_YOUNG_THRESHOLD
from tests.server.helpers import tag

ORIGIN = "https://smith.langchain.com"


async def test_ok_probe(http):
    # As langgraph-api answers: the storage parts are listed as not checked.
    response = await http.get("/ok")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "services": {"database": "skipped", "checkpointer": "skipped",
                                                        "store": "skipped"}}


async def test_ok_probe_can_check_the_database(http):
    response = await http.get("/ok", params={"check_db": 1})
    assert response.status_code == 200
    assert response.json() == {"ok": True, "services": {"database": "healthy", "checkpointer": "healthy",
                                                        "store": "healthy"}}
    assert (await http.get("/ok", params={"check_db": 0})).json()["services"]["database"] == "skipped"


@pytest.mark.parametrize("value", ["2", "yes", "-1"])
async def test_ok_probe_refuses_another_check_db(http, value):
    response = await http.get("/ok", params={"check_db": value})
    assert response.status_code == 422
    assert "check_db" in response.text


async def test_root_answers(http):
    response = await http.get("/")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


async def test_health_checks_database(http):
    response = await http.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


async def test_info_shape(http):
    response = await http.get("/info")
    assert response.status_code == 200
    info = response.json()
    assert isinstance(info["version"], str) and info["version"]
    assert isinstance(info["langgraph_py_version"], str) and info["langgraph_py_version"][0].isdigit()
    assert info["flags"]["assistants"] is True
    assert isinstance(info["flags"]["crons"], bool)
    assert isinstance(info["host"], dict)


async def test_docs_and_openapi(http):
    docs = await http.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    spec = await http.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in ("/threads/{thread_id}/runs/stream", "/assistants/search", "/store/items", "/runs/wait"):
        assert path in paths


async def test_text_plain_json_body_is_parsed(http):
    """Studio posts JSON labelled text/plain; it must be read as JSON."""
    marker = tag()
    created = await http.post(
        "/threads",
        content=json.dumps({"metadata": {"studio": marker}}),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert created.status_code == 200, created.text
    assert created.json()["metadata"] == {"studio": marker}
    found = await http.post(
        "/threads/search",
        content=json.dumps({"metadata": {"studio": marker}}),
        headers={"Content-Type": "text/plain"},
    )
    assert found.status_code == 200
    assert [t["thread_id"] for t in found.json()] == [created.json()["thread_id"]]


async def test_body_without_content_type_is_parsed(http):
    marker = tag()
    created = await http.post("/threads", content=json.dumps({"metadata": {"bare": marker}}).encode())
    assert created.status_code == 200
    assert created.json()["metadata"] == {"bare": marker}


def _field_named(detail, field: str) -> bool:
    return any(field in [str(part) for part in error["loc"]] for error in detail)


async def test_422_names_bad_limit(http):
    response = await http.post("/assistants/search", json={"limit": "many"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/json")
    assert _field_named(response.json()["detail"], "limit")


async def test_422_names_bad_stream_mode(http):
    thread = (await http.post("/threads", json={})).json()
    response = await http.post(
        f"/threads/{thread['thread_id']}/runs/stream",
        json={"assistant_id": "echo", "input": {}, "stream_mode": ["values", "telepathy"]},
    )
    assert response.status_code == 422
    assert _field_named(response.json()["detail"], "stream_mode")
    runs = await http.get(f"/threads/{thread['thread_id']}/runs")
    assert runs.json() == []  # nothing was created


async def test_422_for_non_uuid_ids(http):
    for path in ("/threads/not-a-uuid", "/assistants/not-a-uuid", "/threads/not-a-uuid/state"):
        response = await http.get(path)
        assert response.status_code == 422, path
        assert "must be a UUID" in response.json()["detail"]
    thread = (await http.post("/threads", json={})).json()
    response = await http.get(f"/threads/{thread['thread_id']}/runs/nope")
    assert response.status_code == 422
    assert "run_id" in response.json()["detail"]


async def test_422_for_non_object_configurable(http):
    """A run whose config cannot be merged is refused up front and leaves nothing behind."""
    thread = (await http.post("/threads", json={})).json()
    response = await http.post(
        f"/threads/{thread['thread_id']}/runs",
        json={"assistant_id": "echo", "input": {}, "config": {"configurable": "not-an-object"}},
    )
    assert response.status_code == 422
    assert _field_named(response.json()["detail"], "config")
    assert (await http.get(f"/threads/{thread['thread_id']}/runs")).json() == []
    assert (await http.get(f"/threads/{thread['thread_id']}")).json()["status"] == "idle"
    assistant = await http.post("/assistants", json={"graph_id": "echo", "config": {"configurable": [1]}})
    assert assistant.status_code == 422


async def test_unknown_body_fields_are_ignored(http):
    marker = tag()
    created = await http.post("/threads", json={"metadata": {"m": marker}, "no_such_field": {"x": 1}})
    assert created.status_code == 200
    thread_id = created.json()["thread_id"]
    # The SDK sends fields some servers do not know (strict_resume, langsmith_tracer).
    waited = await http.post(
        f"/threads/{thread_id}/runs/wait",
        json={
            "assistant_id": "echo",
            "input": {"messages": [{"role": "user", "content": "x"}]},
            "strict_resume": False,
            "langsmith_tracer": {"project_name": "p"},
            "something_new": [1, 2, 3],
        },
    )
    assert waited.status_code == 200
    assert waited.json()["turns"] == 1


async def test_404_body_is_detail(http, client):
    missing = str(uuid.uuid4())
    response = await http.get(f"/threads/{missing}")
    assert response.status_code == 404
    body = response.json()
    assert list(body) == ["detail"] and missing in body["detail"]
    with pytest.raises(NotFoundError):
        await client.assistants.get(str(uuid.uuid4()))


async def test_unknown_route_is_404_json(http):
    response = await http.get("/no/such/route")
    assert response.status_code == 404
    assert "detail" in response.json()


async def test_cors_preflight(http):
    response = await http.options(
        "/threads/search",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "content-type" in allowed_headers and "x-api-key" in allowed_headers


async def test_cors_exposes_pagination_and_location_headers(http):
    response = await http.post("/assistants/search", json={"limit": 1}, headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"content-location", "x-pagination-total", "x-pagination-next"} <= exposed
    assert "x-pagination-total" in response.headers


async def test_cors_on_run_creation(http):
    thread = (await http.post("/threads", json={})).json()
    response = await http.post(
        f"/threads/{thread['thread_id']}/runs/wait",
        json={"assistant_id": "echo", "input": {}},
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 200
    assert "content-location" in response.headers["access-control-expose-headers"]
    assert response.headers["content-location"].startswith(f"/threads/{thread['thread_id']}/runs/")


async def test_bad_update_is_client_error_not_500(http):
    """Errors a client can cause are 4xx with a reason, never a 500."""
    thread = (await http.post("/threads", json={})).json()
    await http.post(f"/threads/{thread['thread_id']}/runs/wait", json={"assistant_id": "echo", "input": {}})
    response = await http.post(
        f"/threads/{thread['thread_id']}/state", json={"values": {"note": "x"}, "as_node": "no_such_node"}
    )
    assert response.status_code == 400
    assert "no_such_node" in response.json()["detail"]


async def test_a_500_carries_no_exception_text(server_url):
    """A request the handlers do not anticipate (a non-object `before.configurable`) may fail, but a 500 says
    nothing about the exception. Its own client: after a 500 uvicorn closes the connection."""
    async with httpx.AsyncClient(base_url=server_url) as raw:
        thread = (await raw.post("/threads", json={})).json()
        await raw.post(f"/threads/{thread['thread_id']}/runs/wait", json={"assistant_id": "echo", "input": {}})
    async with httpx.AsyncClient(base_url=server_url) as raw:
        response = await raw.post(f"/threads/{thread['thread_id']}/history", json={"before": {"configurable": 5}})
    assert response.status_code >= 400
    if response.status_code >= 500:
        assert response.json() == {"detail": "Internal server error"}
    else:
        assert "Traceback" not in response.text


async def test_a_started_server_freezes_its_startup_heap_and_collects_young_objects_less_often(client):
    """What the process holds once started is out of the collector's scans, and young objects are collected
    every GC_YOUNG_THRESHOLD allocations (see aegra_server.app.tune_garbage_collector)."""
    assert (await client.http.get("/ok"))["ok"] is True  # the session's server has started
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
