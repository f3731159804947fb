"""Custom auth (`auth.path`), owner isolation, custom routes (`http.app`) and route switches.

A server of its own runs tests/graphs/aegra_auth.json: the test graphs plus `auth_owner.py` (owner isolation
written the documented way; tokens "alice" and "bob") and `custom_app.py` (a FastAPI app with a route, a
middleware, a lifespan and a route colliding with the protocol's). Two users drive it through the official
SDK with their own headers, and raw HTTP where status codes and bodies matter.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from starlette.requests import HTTPConnection

from aegra_server.app import create_app
from aegra_server.auth import AuthSetup, AuthUser, as_user
from aegra_server.config import load_config, parse_config
from aegra_server.errors import ConfigError
from aegra_server.settings import Settings
from tests.server.conftest import HTTP_TIMEOUT, _ServerThread
from tests.server.helpers import human, tag

GRAPHS = Path(__file__).resolve().parents[1] / "graphs"
AUTH_CONFIG = GRAPHS / "aegra_auth.json"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
FAR_AWAY = "0 0 1 1 *"  # a cron schedule that does not fire during a test


def _settings(config: Path, database_url: str, **extra: Any) -> Settings:
    return Settings(AEGRA_CONFIG=config, DATABASE_URL=database_url, AEGRA_HEARTBEAT_SECONDS=0.5, **extra)


@pytest.fixture(scope="module", params=BACKENDS)
def auth_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    def serve(url: str) -> Iterator[str]:
        server = _ServerThread(_settings(AUTH_CONFIG, url))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()

    if request.param == "sqlite":
        yield from serve(f"sqlite:///{tmp_path_factory.mktemp('aegra-auth') / 'aegra.db'}")
        return
    from tests.postgres import fresh_database

    with fresh_database(request.getfixturevalue("pg_server"), prefix="aegra_auth") as url:
        yield from serve(url)


def _sdk(url: str, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return get_client(url=url, api_key=None, headers=headers, timeout=HTTP_TIMEOUT)


@pytest.fixture
async def alice(auth_server: str) -> AsyncIterator:
    sdk = _sdk(auth_server, "alice")
    yield sdk
    await sdk.http.client.aclose()


@pytest.fixture
async def bob(auth_server: str) -> AsyncIterator:
    sdk = _sdk(auth_server, "bob")
    yield sdk
    await sdk.http.client.aclose()


@pytest.fixture
async def raw(auth_server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=auth_server, timeout=HTTP_TIMEOUT) as client:
        yield client


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _status(call) -> int:
    """The HTTP status an SDK call fails with (the SDK raises httpx.HTTPStatusError)."""
    try:
        await call
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code
    raise AssertionError("the call succeeded")


# ---- authentication ---------------------------------------------------------------------------------------------


async def test_requests_without_a_valid_token_are_401(raw: httpx.AsyncClient, auth_server: str) -> None:
    thread = f"/threads/{uuid.uuid4()}"
    missing = await raw.get(thread)
    assert missing.status_code == 401
    assert missing.json() == {"detail": "Missing bearer token"}
    wrong = await raw.get(thread, headers=_as("mallory"))
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "Invalid token"}
    # Refused before the body is even looked at, on every protocol route.
    assert (await raw.post("/threads/search", content=b"{not json")).status_code == 401
    assert (await raw.put("/store/items", json={})).status_code == 401
    mcp_call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
    assert (await raw.post("/mcp", json=mcp_call, headers={"Accept": "application/json"})).status_code == 401
    a2a_call = {"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "x"}}
    assert (await raw.post("/a2a/echo", json=a2a_call, headers={"Accept": "application/json"})).status_code == 401
    assert (await raw.get("/a2a/echo/.well-known/agent-card.json")).status_code == 401
    assert (await raw.post("/ui/echo", json={"name": "x"})).status_code == 401
    # The generative UI's bundle files are loaded by URL from a page: public (none here, so a 404, not a 401).
    assert (await raw.get("/ui/echo/entrypoint.js")).status_code == 404
    deep = b'{"metadata": ' + b"[" * 500 + b"]" * 500 + b"}"
    assert (await raw.post("/threads", content=deep)).status_code == 401  # limits are told only to callers
    anonymous = _sdk(auth_server, None)
    try:
        assert await _status(anonymous.threads.search()) == 401
    finally:
        await anonymous.http.client.aclose()


async def test_probes_and_docs_are_public(raw: httpx.AsyncClient) -> None:
    for path in ("/ok", "/info", "/health", "/openapi.json"):
        assert (await raw.get(path)).status_code == 200, path


async def test_the_ui_answers_what_it_does_not_have_with_a_json_404(raw: httpx.AsyncClient) -> None:
    # Bundle files are public, so any name reaches the file system: none that it refuses is a 500.
    for path in ("/ui/echo/a%00b", "/ui/a%00b/x", f"/ui/echo/{'a' * 5000}", f"/ui/{'a' * 5000}/x"):
        response = await raw.get(path)
        assert response.status_code == 404 and "no UI file" in response.json()["detail"], path[:40]
    missing = await raw.post("/ui/echo", json={"name": "x"}, headers=_as("alice"))
    assert missing.status_code == 404
    assert missing.json() == {"detail": "UI not found for graph 'echo'"}


async def test_a_failing_authenticate_handler_is_a_bare_500(raw: httpx.AsyncClient) -> None:
    response = await raw.get(f"/threads/{uuid.uuid4()}", headers=_as("broken"))
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert "secret-diagnostic" not in response.text and "RuntimeError" not in response.text


async def test_refusals_carry_cors_headers(raw: httpx.AsyncClient) -> None:
    response = await raw.get(f"/threads/{uuid.uuid4()}", headers={"Origin": "https://ui.example"})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == "*"
    exposed = {h.strip() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"content-location", "location", "x-pagination-total", "x-pagination-next"} <= exposed


# ---- threads ------------------------------------------------------------------------------------------------------


async def test_creating_a_thread_stamps_its_owner(alice, bob) -> None:
    # A forged owner is overwritten by the create handler.
    thread = await alice.threads.create(metadata={"owner": "bob", "topic": "x"})
    assert thread["metadata"]["owner"] == "alice"
    assert thread["metadata"]["topic"] == "x"
    # Updating cannot hand the thread to someone else either: the handler stamps the owner again.
    updated = await alice.threads.update(thread["thread_id"], metadata={"owner": "bob"})
    assert updated["metadata"]["owner"] == "alice"
    assert await _status(bob.threads.get(thread["thread_id"])) == 404


async def test_one_user_cannot_touch_anothers_thread(alice, bob, raw: httpx.AsyncClient) -> None:
    label = tag()
    thread = await alice.threads.create(metadata={"label": label})
    thread_id = thread["thread_id"]
    await alice.runs.wait(thread_id, "echo", input=human("hi"))

    assert await _status(bob.threads.get(thread_id)) == 404
    assert await _status(bob.threads.update(thread_id, metadata={"x": 1})) == 404
    assert await _status(bob.threads.delete(thread_id)) == 404
    assert await _status(bob.threads.copy(thread_id)) == 404
    assert await _status(bob.threads.get_state(thread_id)) == 404
    assert await _status(bob.threads.update_state(thread_id, {"note": "mine"})) == 404
    assert await _status(bob.threads.get_history(thread_id)) == 404
    assert await _status(bob.runs.list(thread_id)) == 404
    assert await _status(bob.runs.create(thread_id, "echo", input=human("hijack"))) == 404
    assert await _status(bob.runs.wait(thread_id, "echo", input=human("hijack"))) == 404
    assert await bob.threads.search(metadata={"label": label}) == []
    assert await bob.threads.count(metadata={"label": label}) == 0
    stream = await raw.get(f"/threads/{thread_id}/stream", headers=_as("bob"))
    assert stream.status_code == 404
    assert (await raw.get(f"/threads/{thread_id}/storage", headers=_as("bob"))).status_code == 404
    assert (await raw.get(f"/threads/{thread_id}/storage", headers=_as("alice"))).status_code == 200
    pruned = await raw.post("/threads/prune", json={"thread_ids": [thread_id]}, headers=_as("bob"))
    assert pruned.json() == {"pruned_count": 0}

    # Nothing bob tried changed anything of alice's.
    assert [t["thread_id"] for t in await alice.threads.search(metadata={"label": label})] == [thread_id]
    assert await alice.threads.count(metadata={"label": label}) == 1
    state = await alice.threads.get_state(thread_id)
    assert [m["content"] for m in state["values"]["messages"]] == ["hi", "echo: hi"]
    assert "note" not in state["values"]
    copy = await alice.threads.copy(thread_id)
    assert copy["metadata"]["owner"] == "alice"
    assert (await alice.threads.get(thread_id))["metadata"]["label"] == label


async def test_a_thread_created_by_a_run_belongs_to_its_creator(alice, bob) -> None:
    thread_id = str(uuid.uuid4())
    await alice.runs.wait(thread_id, "echo", input=human("new"), if_not_exists="create")
    assert (await alice.threads.get(thread_id))["metadata"]["owner"] == "alice"
    assert await _status(bob.threads.get(thread_id)) == 404
    # The id is taken: bob can neither run on it nor claim it.
    assert await _status(bob.runs.wait(thread_id, "echo", input=human("x"), if_not_exists="create")) == 404
    assert await _status(bob.threads.create(thread_id=thread_id, if_exists="do_nothing")) == 409


async def test_a_filter_with_contains_selects_list_members(alice, bob) -> None:
    team = tag()
    shared = await alice.threads.create(metadata={"team": team, "members": ["alice", "bob"]})
    private = await alice.threads.create(metadata={"team": team, "members": ["alice"]})
    # The search handler filters a team search on membership ($contains)...
    assert [t["thread_id"] for t in await bob.threads.search(metadata={"team": team})] == [shared["thread_id"]]
    both = {t["thread_id"] for t in await alice.threads.search(metadata={"team": team})}
    assert both == {shared["thread_id"], private["thread_id"]}
    # ...while reading stays the owner's.
    assert await _status(bob.threads.get(shared["thread_id"])) == 404


async def test_a_handler_exception_sets_status_and_detail(raw: httpx.AsyncClient) -> None:
    response = await raw.post("/threads", json={"metadata": {"forbidden": True}}, headers=_as("alice"))
    assert response.status_code == 403
    assert response.json() == {"detail": "forbidden threads are forbidden"}


# ---- runs ---------------------------------------------------------------------------------------------------------


async def test_one_user_cannot_see_or_stop_anothers_runs(alice, bob, raw: httpx.AsyncClient) -> None:
    thread_id = (await alice.threads.create())["thread_id"]
    run = await alice.runs.create(thread_id, "slow", input={"steps": 15, "delay": 0.1, "label": "a"})
    run_id = run["run_id"]

    assert await _status(bob.runs.get(thread_id, run_id)) == 404
    assert await _status(bob.runs.join(thread_id, run_id)) == 404
    assert await _status(bob.runs.cancel(thread_id, run_id)) == 404
    assert await _status(bob.runs.delete(thread_id, run_id)) == 404
    joined = await raw.get(f"/threads/{thread_id}/runs/{run_id}/stream", headers=_as("bob"))
    assert joined.status_code == 404
    # Cancelling by id, or interrupting through a new run, does not reach alice's run.
    cancelled = await raw.post("/runs/cancel", json={"thread_id": thread_id, "run_ids": [run_id]}, headers=_as("bob"))
    assert cancelled.status_code == 404  # as if there were no such run
    interrupt = bob.runs.create(thread_id, "echo", input=human("x"), multitask_strategy="interrupt")
    assert await _status(interrupt) == 404

    await alice.runs.join(thread_id, run_id)
    finished = await alice.runs.get(thread_id, run_id)
    assert finished["status"] == "success"
    assert "auth" not in finished["kwargs"]  # the run's user stays on the server


async def test_a2a_tasks_are_their_senders(alice, raw: httpx.AsyncClient) -> None:
    """/a2a goes through the HTTP API's authorization: the agent is an assistant the caller may read (here: their
    own), and the context a message creates is its sender's thread."""
    agent = f"/a2a/{(await alice.assistants.create('echo'))['assistant_id']}"
    assert (await raw.get(agent, headers=_as("bob"))).status_code == 404
    send = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {
        "messageId": "m1", "role": "user", "parts": [{"kind": "text", "text": "mine"}]}}}
    headers = {"Accept": "application/json"}
    answer = (await raw.post(agent, json=send, headers={**headers, **_as("alice")})).json()
    assert "result" in answer, answer
    sent = answer["result"]
    assert sent["status"]["state"] == "completed"
    get = {"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": sent["id"]}}
    theirs = (await raw.post(agent, json=get, headers={**headers, **_as("bob")})).json()
    assert theirs["error"]["message"] == f"Assistant '{agent.rsplit('/', 1)[1]}' not found"  # as it is to bob
    reply = {**send, "params": {"message": {**send["params"]["message"], "contextId": sent["contextId"]}}}
    intruding = (await raw.post(agent, json=reply, headers={**headers, **_as("bob")})).json()
    assert "error" in intruding
    mine = (await raw.post(agent, json=get, headers={**headers, **_as("alice")})).json()["result"]
    assert mine["status"]["state"] == "completed" and mine["artifacts"][0]["parts"][0]["text"] == "echo: mine"


async def test_streams_are_the_owners(alice, bob) -> None:
    thread_id = (await alice.threads.create())["thread_id"]
    events = [e async for e in alice.runs.stream(thread_id, "echo", input=human("s"), stream_mode="values")]
    assert events[-1].data["messages"][-1]["content"] == "echo: s"
    with pytest.raises(httpx.HTTPStatusError) as refused:
        async for _ in bob.runs.stream(thread_id, "echo", input=human("s")):
            pass
    assert refused.value.response.status_code == 404


async def test_the_user_reaches_the_graph(alice, bob) -> None:
    for client, who, permissions, org in ((alice, "alice", ["assistants:delete"], "acme"), (bob, "bob", [], "globex")):
        stateless = await client.runs.wait(None, "whoami", input={})
        assert stateless.pop("request_id")  # the creating request's, which the SDK does not name
        assert stateless == {
            "identity": who,
            "user_id": who,
            "permissions": permissions,
            "org": org,
            "runtime_identity": who,
            "configurable_user_id": who,  # as langgraph-api: the caller's, when no config set one
            "run_attempt": 1,
        }
        thread_id = (await client.threads.create())["thread_id"]
        threaded = await client.runs.wait(thread_id, "whoami", input={})
        assert threaded["identity"] == who and threaded["runtime_identity"] == who


async def test_a_client_cannot_pose_as_another_user_through_config(alice) -> None:
    forged = {"configurable": {"langgraph_auth_user": {"identity": "bob"}, "langgraph_auth_user_id": "bob"}}
    output = await alice.runs.wait(None, "whoami", input={}, config=forged)
    assert output["identity"] == "alice" and output["user_id"] == "alice"


async def test_passwords_in_errors_do_not_reach_clients(alice, raw: httpx.AsyncClient) -> None:
    from tests.graphs.leaky import SECRET

    output = await alice.runs.wait(None, "leaky", input={}, raise_error=False)
    # A driver's error: its type is shown, its message is not (as langgraph-api; tests/unit/test_serde.py).
    assert output["__error__"] == {"error": "ConnectionError", "message": "An internal error occurred"}
    thread_id = (await alice.threads.create())["thread_id"]
    response = await raw.post(
        f"/threads/{thread_id}/runs/stream", json={"assistant_id": "leaky", "input": {}}, headers=_as("alice")
    )
    assert "event: error" in response.text
    assert SECRET not in response.text
    assert SECRET not in json.dumps(await alice.threads.get(thread_id))


# ---- crons --------------------------------------------------------------------------------------------------------


async def test_one_user_cannot_touch_anothers_crons(alice, bob, raw: httpx.AsyncClient) -> None:
    label = tag()
    cron = await alice.crons.create("echo", schedule=FAR_AWAY, input=human("c"), metadata={"label": label})
    cron_id = cron["cron_id"]
    assert cron["metadata"]["owner"] == "alice"
    assert "auth" not in cron["payload"]
    assert cron["user_id"] == "alice"

    assert (await raw.get(f"/runs/crons/{cron_id}", headers=_as("bob"))).status_code == 404
    assert await bob.crons.search(metadata={"label": label}) == []
    assert await bob.crons.count(metadata={"label": label}) == 0
    assert (await raw.patch(f"/runs/crons/{cron_id}", json={"enabled": False}, headers=_as("bob"))).status_code == 404
    assert await _status(bob.crons.delete(cron_id)) == 404

    # A cron on alice's thread would run on it: bob may not make one.
    thread_id = (await alice.threads.create())["thread_id"]
    assert await _status(bob.crons.create_for_thread(thread_id, "echo", schedule=FAR_AWAY)) == 404
    mine = await alice.crons.create_for_thread(thread_id, "echo", schedule=FAR_AWAY)
    assert mine["thread_id"] == thread_id

    assert [c["cron_id"] for c in await alice.crons.search(metadata={"label": label})] == [cron_id]
    assert (await raw.get(f"/runs/crons/{cron_id}", headers=_as("alice"))).json()["enabled"] is True
    await alice.crons.delete(cron_id)
    await alice.crons.delete(mine["cron_id"])


async def test_a_fired_cron_runs_as_its_creator(alice) -> None:
    from aegra_server.crons import run_payload

    payload = run_payload(
        {
            "payload": {"assistant_id": "x", "auth": {"user": {"identity": "alice"}, "permissions": []}},
            "assistant_id": "x",
            "metadata": {},
            "thread_id": None,
        }
    )
    assert payload["auth"]["user"]["identity"] == "alice"


# ---- store --------------------------------------------------------------------------------------------------------


async def test_store_items_live_in_their_owners_namespace(alice, bob) -> None:
    key = tag()
    await alice.store.put_item(["notes"], key, {"text": "alice's"})
    await bob.store.put_item(["notes"], key, {"text": "bob's"})

    mine = await alice.store.get_item(["notes"], key)
    assert mine["value"] == {"text": "alice's"}
    assert mine["namespace"] == ["alice", "notes"]
    assert (await bob.store.get_item(["notes"], key))["value"] == {"text": "bob's"}
    # Asking for alice's full namespace still lands in bob's own.
    assert await bob.store.get_item(["alice", "notes"], key) is None

    found = await bob.store.search_items(["notes"])
    assert {tuple(i["namespace"]) for i in found["items"]} == {("bob", "notes")}
    namespaces = (await bob.store.list_namespaces())["namespaces"]
    assert all(ns[0] == "bob" for ns in namespaces)

    await bob.store.delete_item(["notes"], key)
    assert await bob.store.get_item(["notes"], key) is None
    assert (await alice.store.get_item(["notes"], key))["value"] == {"text": "alice's"}


# ---- assistants ---------------------------------------------------------------------------------------------------


async def test_assistants_are_private_and_a_false_handler_is_403(alice, bob, raw: httpx.AsyncClient) -> None:
    label = tag()
    mine = await alice.assistants.create("echo", metadata={"label": label}, name="alice's")
    theirs = await bob.assistants.create("echo", metadata={"label": label}, name="bob's")
    assert mine["metadata"]["owner"] == "alice"

    assert await _status(bob.assistants.get(mine["assistant_id"])) == 404
    assert await _status(bob.assistants.update(mine["assistant_id"], name="taken")) == 404
    assert [a["assistant_id"] for a in await bob.assistants.search(metadata={"label": label})] == [theirs["assistant_id"]]
    assert await bob.assistants.count(metadata={"label": label}) == 1
    versions = await raw.post(f"/assistants/{mine['assistant_id']}/versions", json={}, headers=_as("bob"))
    assert versions.status_code == 404

    # bob's delete handler returns False: 403, even for his own assistant.
    refused = await raw.delete(f"/assistants/{theirs['assistant_id']}", headers=_as("bob"))
    assert refused.status_code == 403
    assert refused.json() == {"detail": "Forbidden"}
    # alice may delete, but only her own.
    assert await _status(alice.assistants.delete(theirs["assistant_id"])) == 404
    await alice.assistants.delete(mine["assistant_id"])
    assert await _status(alice.assistants.get(mine["assistant_id"])) == 404


# ---- the thread protocol ------------------------------------------------------------------------------------------


async def test_the_thread_protocol_goes_through_the_threads_authorization(alice, raw: httpx.AsyncClient) -> None:
    thread_id = (await alice.threads.create())["thread_id"]

    async def command(token: str, method: str, params: dict) -> dict:
        envelope = {"id": 1, "method": method, "params": params}
        response = await raw.post(f"/threads/{thread_id}/commands", json=envelope, headers=_as(token))
        assert response.status_code == 200, response.text
        return response.json()

    for method, params in (
        ("state.get", {}),
        ("state.listCheckpoints", {}),
        ("agent.getTree", {}),
        ("run.start", {"assistant_id": "echo", "input": human("x")}),
    ):
        answer = await command("bob", method, params)
        assert answer["type"] == "error", (method, answer)
        assert "not found" in answer["message"], (method, answer)
    events = await raw.post(f"/threads/{thread_id}/stream/events", json={"channels": ["values"]}, headers=_as("bob"))
    assert events.status_code == 404
    assert (await raw.post(f"/threads/{thread_id}/commands", json={}, headers={})).status_code == 401

    started = await command("alice", "run.start", {"assistant_id": "echo", "input": human("ok")})
    assert started["type"] == "success", started
    await alice.runs.join(thread_id, started["result"]["run_id"])
    state = await command("alice", "state.get", {})
    assert state["result"]["values"]["messages"][-1]["content"] == "echo: ok"

    # A thread the protocol creates (run.start on a new id) is its creator's.
    fresh = str(uuid.uuid4())
    envelope = {"id": 2, "method": "run.start", "params": {"assistant_id": "echo", "input": human("new")}}
    created = await raw.post(f"/threads/{fresh}/commands", json=envelope, headers=_as("alice"))
    assert created.json()["type"] == "success"
    assert (await alice.threads.get(fresh))["metadata"]["owner"] == "alice"

    # An id nobody has created yet may be subscribed to (the SDK subscribes before run.start); once alice's run
    # creates the thread, bob's subscription ends without showing him any of it.
    unborn = str(uuid.uuid4())
    url = f"/threads/{unborn}/stream/events"
    async with raw.stream("POST", url, json={"channels": ["values", "lifecycle"]}, headers=_as("bob")) as bobs:
        assert bobs.status_code == 200
        envelope = {"id": 3, "method": "run.start", "params": {"assistant_id": "echo", "input": human("mine")}}
        started = await raw.post(f"/threads/{unborn}/commands", json=envelope, headers=_as("alice"))
        assert started.json()["type"] == "success"
        seen = await asyncio.wait_for(bobs.aread(), 10)
    assert b"data:" not in seen, seen


async def test_the_thread_protocol_websocket_is_authenticated(alice, auth_server: str) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    thread_id = (await alice.threads.create())["thread_id"]
    base = auth_server.replace("http://", "ws://")
    with pytest.raises(InvalidStatus):
        async with connect(f"{base}/threads/{thread_id}/stream/events"):
            pass
    async with connect(f"{base}/threads/{thread_id}/stream/events", additional_headers=_as("bob")) as ws:
        await asyncio.wait_for(ws.wait_closed(), 10)
        assert ws.close_code == 4404
    async with connect(f"{base}/threads/{thread_id}/stream/events", additional_headers=_as("alice")) as ws:
        await ws.send(json.dumps({"id": 1, "method": "state.get", "params": {}}))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert answer["type"] == "success", answer


# ---- custom routes --------------------------------------------------------------------------------------------------


async def test_custom_routes_are_served_beside_the_protocol(raw: httpx.AsyncClient) -> None:
    from tests.graphs import custom_app

    hello = await raw.get("/custom/hello")
    assert hello.status_code == 200
    # Its lifespan ran (the greeting is set there) and, without enable_custom_route_auth, nobody authenticated.
    assert hello.json() == {"greeting": "hello from the custom app", "user": None}
    # Its middleware wraps everything, the protocol's routes included.
    assert hello.headers["x-custom-middleware"] == "yes"
    assert (await raw.get("/ok")).headers["x-custom-middleware"] == "yes"
    assert (await raw.get(f"/threads/{uuid.uuid4()}")).headers["x-custom-middleware"] == "yes"
    # Its colliding /info never runs: the protocol's answers.
    info = (await raw.get("/info")).json()
    assert "shadowed" not in info and "version" in info
    # Its bodies are its own: no JSON rewriting, no protocol body limit.
    echoed = await raw.post("/custom/echo", content=b"plain text", headers={"content-type": "text/plain"})
    assert echoed.json() == {"content_type": "text/plain", "size": 10}
    assert (await raw.get("/custom/nothing-here")).status_code == 404
    del custom_app


def _write_config(tmp_path: Path, **changes: Any) -> Path:
    """aegra_auth.json with absolute paths and `changes` merged in (auth / http sections)."""
    data = json.loads(AUTH_CONFIG.read_text())
    data["dependencies"] = [str(GRAPHS)]
    data["graphs"] = {
        k: ({**v, "path": f"{GRAPHS}/{v['path'][2:]}"} if isinstance(v, dict) else f"{GRAPHS}/{v[2:]}")
        for k, v in data["graphs"].items()
    }
    data["auth"] = {"path": f"{GRAPHS}/auth_owner.py:auth"}
    data["http"] = {"app": f"{GRAPHS}/custom_app.py:app"}
    for section, values in changes.items():
        if values is None:
            data.pop(section, None)
        else:
            data[section] = {**data.get(section, {}), **values}
    path = tmp_path / "aegra.json"
    path.write_text(json.dumps(data))
    return path


async def test_enable_custom_route_auth_puts_custom_routes_behind_authenticate(tmp_path: Path) -> None:
    config = _write_config(tmp_path, http={"enable_custom_route_auth": True})
    server = _ServerThread(_settings(config, f"sqlite:///{tmp_path / 'db.sqlite'}"))
    await asyncio.to_thread(server.start)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=HTTP_TIMEOUT) as raw:
            assert (await raw.get("/custom/hello")).status_code == 401
            hello = await raw.get("/custom/hello", headers=_as("alice"))
            assert hello.status_code == 200
            assert hello.json()["user"] == "alice"
    finally:
        await asyncio.to_thread(server.stop)


# ---- loading and configuration -----------------------------------------------------------------------------------------


def _app(config: Path, tmp_path: Path, **settings: Any):
    return create_app(_settings(config, f"sqlite:///{tmp_path / 'db.sqlite'}", **settings))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import not_a_real_module_anywhere\n", "ModuleNotFoundError"),
        ("def broken(:\n", "SyntaxError"),
        ("raise RuntimeError('no secrets here')\n", "no secrets here"),
        ("auth = 42\n", "not a langgraph_sdk.Auth"),
        ("other = 1\n", "has no attribute 'auth'"),
        (
            "from langgraph_sdk import Auth\nauth = Auth()\n@auth.authenticate\nasync def a(cookie):\n    return 'x'\n",
            "asks for 'cookie'",
        ),
    ],
)
def test_a_broken_auth_module_stops_the_server(tmp_path: Path, source: str, expected: str) -> None:
    (tmp_path / "broken_auth.py").write_text(source)
    config = _write_config(tmp_path, auth={"path": f"{tmp_path}/broken_auth.py:auth"}, http=None)
    with pytest.raises(ConfigError) as refused:
        _app(config, tmp_path)
    assert expected in str(refused.value)
    assert "auth.path" in str(refused.value)


def test_a_missing_auth_file_stops_the_server(tmp_path: Path) -> None:
    config = _write_config(tmp_path, auth={"path": "./nowhere.py:auth"}, http=None)
    with pytest.raises(ConfigError, match="nowhere.py"):
        _app(config, tmp_path)


def test_a_custom_app_that_is_no_app_stops_the_server(tmp_path: Path) -> None:
    (tmp_path / "not_app.py").write_text("app = 'nope'\n")
    config = _write_config(tmp_path, http={"app": f"{tmp_path}/not_app.py:app"})
    with pytest.raises(ConfigError, match="not a Starlette or FastAPI app"):
        _app(config, tmp_path)


def test_a_shadowed_custom_route_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = _write_config(tmp_path)
    with caplog.at_level("WARNING", logger="aegra.custom_app"):
        _app(config, tmp_path)
    assert any("GET /info" in r.getMessage() for r in caplog.records)
    assert not any("/custom/hello" in r.getMessage() for r in caplog.records)


async def test_disabled_route_groups_are_gone(tmp_path: Path) -> None:
    switches = {f"disable_{g}": True for g in ("assistants", "store", "meta", "runs", "webhooks", "ui", "mcp", "a2a")}
    config = _write_config(tmp_path, auth=None, http={"app": None, **switches})
    app = _app(config, tmp_path)
    paths = {getattr(r, "path", None) for r in app.router.routes}
    assert "/threads" in paths and "/threads/{thread_id}/commands" in paths
    for gone in ("/assistants", "/store/items", "/ok", "/info", "/openapi.json", "/docs", "/runs", "/runs/crons",
                 "/threads/{thread_id}/runs", "/mcp", "/a2a/{assistant_id}", "/.well-known/agent-card.json",
                 "/ui/{graph_id}"):
        assert gone not in paths, gone
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://aegra") as client:
        assert (await client.post("/assistants/search", json={})).status_code == 404
        assert (await client.get("/ok")).status_code == 404


def test_http_cors_is_applied(tmp_path: Path) -> None:
    cors = {"allow_origins": ["https://ui.example"], "expose_headers": ["x-extra"], "allow_credentials": True}
    config = _write_config(tmp_path, auth=None, http={"app": None, "cors": cors})
    app = _app(config, tmp_path)
    (middleware,) = [m for m in app.user_middleware if m.cls.__name__ == "CORSMiddleware"]
    assert middleware.kwargs["allow_origins"] == ["https://ui.example"]
    assert middleware.kwargs["allow_credentials"] is True
    assert {"x-extra", "content-location", "location", "x-pagination-total"} <= set(middleware.kwargs["expose_headers"])


# ---- units: users, Studio ----------------------------------------------------------------------------------------------


def test_users_normalise_from_strings_dicts_and_objects() -> None:
    assert as_user("alice") == {"identity": "alice", "display_name": "alice", "is_authenticated": True, "permissions": []}
    user = as_user({"identity": "bob", "permissions": ("read",), "org": "globex"})
    assert user.identity == "bob" and user.permissions == ["read"] and user["org"] == "globex" and user.org == "globex"

    class Principal:
        identity = "carol"
        permissions = ["write"]
        is_authenticated = True
        display_name = "Carol"

    carol = as_user(Principal())
    assert carol.display_name == "Carol" and carol.permissions == ["write"]
    for bad in ({"permissions": []}, {"identity": ""}, 42, {"identity": "x", "permissions": "admin"}):
        with pytest.raises(TypeError):
            as_user(bad)
    # What the graph gets is plain JSON and a BaseUser at once.
    from langgraph_sdk.auth.types import BaseUser

    assert isinstance(user, BaseUser) and json.loads(json.dumps(user))["identity"] == "bob"


def _connection(headers: dict[str, str]) -> HTTPConnection:
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return HTTPConnection({"type": "http", "method": "GET", "path": "/threads", "headers": raw_headers, "query_string": b""})


@pytest.mark.parametrize(
    ("dev_mode", "disable_studio_auth", "bypassed"),
    [(True, False, True), (True, True, False), (False, False, False)],
)
async def test_studio_requests_skip_authenticate_only_under_aegra_dev(
    tmp_path: Path, dev_mode: bool, disable_studio_auth: bool, bypassed: bool
) -> None:
    config = load_config(_write_config(tmp_path, auth={"disable_studio_auth": disable_studio_auth}))
    setup = AuthSetup.from_config(config, dev_mode=dev_mode)
    studio = _connection({"x-auth-scheme": "langsmith"})
    if bypassed:
        user = await setup.authenticate(studio)
        assert user.identity == "langgraph-studio-user"
        # Handlers still run, with a StudioUser (the owner handler lets Studio see everything).
        assert await setup.authorize(user, "threads", "read", {"thread_id": None}) is None
    else:
        from aegra_server.auth import AuthFailure

        with pytest.raises(AuthFailure) as refused:
            await setup.authenticate(studio)
        assert refused.value.status_code == 401


async def test_handler_lookup_prefers_the_most_specific(tmp_path: Path) -> None:
    config = load_config(_write_config(tmp_path))
    setup = AuthSetup.from_config(config, dev_mode=False)
    assert setup.handler("threads", "create").__name__ == "create_thread"
    assert setup.handler("threads", "read").__name__ == "owner_only"
    assert setup.handler("store", "put").__name__ == "own_namespace"
    assert setup.handler("assistants", "delete").__name__ == "delete_assistant"
    alice = AuthUser(identity="alice", permissions=[])
    value: dict[str, Any] = {"thread_id": None, "metadata": {"owner": "mallory"}}
    assert await setup.authorize(alice, "threads", "create", value) == {"owner": "alice"}
    assert value["metadata"]["owner"] == "alice"
    assert parse_config({"graphs": {"a": "./a.py:g"}}, tmp_path / "x.json").auth is None
