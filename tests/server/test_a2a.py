"""/a2a: the official A2A SDK (a2a-sdk) talks to each assistant as an agent, in protocol 1.0 and through its 0.3
transport; raw JSON-RPC for the transport's answers to malformed requests."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.errors import TaskNotCancelableError, UnsupportedOperationError
from google.protobuf import json_format, struct_pb2
from langgraph_sdk import get_client

from tests.server.helpers import leftover_assistant

ACCEPT = {"Accept": "application/json"}
VERSIONS = ["1.0", "0.3"]


async def _card(server_url: str, assistant: str) -> AgentCard:
    async with httpx.AsyncClient() as http:
        return await A2ACardResolver(http, f"{server_url}/a2a/{assistant}").get_agent_card()


async def _client(server_url: str, assistant: str, version: str, *, streaming: bool) -> Client:
    """The SDK's client for that protocol version (1.0: its own transport; 0.3: its compatibility transport)."""
    card = await _card(server_url, assistant)
    chosen = [i for i in card.supported_interfaces if i.protocol_version == version]
    assert chosen, f"the card offers no {version} interface"
    del card.supported_interfaces[:]
    card.supported_interfaces.extend(chosen)
    return ClientFactory(ClientConfig(streaming=streaming)).create(card)


def _text(text: str, **ids: str) -> SendMessageRequest:
    message = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=text)], **ids)
    return SendMessageRequest(message=message)


def _data(data: dict, **ids: str) -> SendMessageRequest:
    value = struct_pb2.Value()
    value.struct_value.update(data)
    message = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(data=value)], **ids)
    return SendMessageRequest(message=message)


async def _events(client: Client, request: SendMessageRequest) -> list[StreamResponse]:
    return [event async for event in client.send_message(request)]


def _texts(parts) -> list[str]:
    return [part.text for part in parts if part.HasField("text")]


@pytest.fixture
async def clients(server_url: str) -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        await client.close()


async def test_the_agent_card_describes_the_assistant_for_both_protocol_versions(server_url, http):
    card = await _card(server_url, "echo")
    assistant_id = (await http.get("/a2a/echo")).json()["url"].rsplit("/", 1)[1]
    assert card.name == "echo" and card.description == "Echoes the last message and counts turns"
    url = f"{server_url}/a2a/{assistant_id}"
    assert {(i.url, i.protocol_binding, i.protocol_version) for i in card.supported_interfaces} == {
        (url, "JSONRPC", "1.0"), (url, "JSONRPC", "0.3")}
    assert card.capabilities.streaming and not card.capabilities.push_notifications
    assert list(card.default_input_modes) == ["application/json", "text/plain"]
    assert [skill.id for skill in card.skills] == [f"{assistant_id}-main"]
    # The same card by the assistant's id, at the 0.3 name, at the path itself and from the server's root.
    raw = (await http.get(f"/a2a/{assistant_id}/.well-known/agent-card.json")).json()
    assert raw["url"] == url and raw["protocolVersion"] == "0.3.0" and raw["preferredTransport"] == "JSONRPC"
    for path in (f"/a2a/{assistant_id}/.well-known/agent.json", f"/a2a/{assistant_id}",
                 f"/.well-known/agent-card.json?assistant_id={assistant_id}",
                 "/.well-known/agent-card.json?assistant_id=echo"):
        assert (await http.get(path)).json()["url"] == url, path
    missing = await http.get("/.well-known/agent-card.json")  # the test server has several graphs
    assert missing.status_code == 422 and "assistant_id" in missing.json()["detail"]
    assert (await http.get(f"/a2a/{uuid.uuid4()}/.well-known/agent-card.json")).status_code == 404
    # No sessions to end: a 405 that says what the path serves.
    refused = await http.delete(f"/a2a/{assistant_id}")
    assert refused.status_code == 405 and refused.json() == {"detail": "Method Not Allowed"}
    assert set(refused.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


async def test_an_assistant_sets_its_cards_media_types(http, client):
    plain = await client.assistants.create("echo", metadata={"a2a": {"input_modes": ["text/plain"]}})
    card = (await http.get(f"/a2a/{plain['assistant_id']}/.well-known/agent-card.json")).json()
    assert card["defaultInputModes"] == ["text/plain"]
    assert card["defaultOutputModes"] == ["application/json", "text/plain"]
    assert card["skills"][0]["inputModes"] == ["text/plain"]
    broken = await client.assistants.create("echo", metadata={"a2a": {"output_modes": []}})
    refused = await http.get(f"/a2a/{broken['assistant_id']}")
    assert refused.status_code == 422 and "metadata.a2a.output_modes" in refused.json()["detail"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_message_is_answered_and_a_context_is_a_conversation(server_url, clients, version):
    client = await _client(server_url, "echo", version, streaming=False)
    clients.append(client)
    (first,) = await _events(client, _text("hello"))
    task = first.task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert task.id.startswith(f"{task.context_id}:")
    (artifact,) = task.artifacts
    assert artifact.name == "Assistant Response" and _texts(artifact.parts) == ["echo: hello"]
    assert [(m.role, _texts(m.parts)) for m in task.history] == [
        (Role.ROLE_USER, ["hello"]), (Role.ROLE_AGENT, ["echo: hello"])]

    # Another message in the same context is the next turn of the same thread: a new task.
    (second,) = await _events(client, _text("again", context_id=task.context_id))
    assert second.task.context_id == task.context_id and second.task.id != task.id
    assert _texts(second.task.artifacts[0].parts) == ["echo: again"]
    assert len(second.task.history) == 4
    thread = await get_client(url=server_url).threads.get(task.context_id)
    assert thread["values"]["turns"] == 2 and thread["status"] == "idle"

    # The thread has moved on, yet the first task still tells its own outcome: the state its run left.
    fetched = await client.get_task(GetTaskRequest(id=task.id, history_length=1))
    assert fetched.status.state == TaskState.TASK_STATE_COMPLETED
    assert _texts(fetched.artifacts[0].parts) == ["echo: hello"]
    assert [_texts(m.parts) for m in fetched.history] == [["echo: hello"]]
    latest = await client.get_task(GetTaskRequest(id=second.task.id))
    assert _texts(latest.artifacts[0].parts) == ["echo: again"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_files_reach_the_graph_as_content_blocks(server_url, clients, version):
    client = await _client(server_url, "echo", version, streaming=False)
    clients.append(client)
    png = b"\x89PNG\r\n\x1a\n-not-really"
    parts = [Part(text="look at "), Part(raw=png, media_type="image/png", filename="dot.png"),
             Part(url="https://example.com/report.pdf", media_type="application/pdf")]
    message = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=parts)
    (event,) = await _events(client, SendMessageRequest(message=message))
    assert _texts(event.task.artifacts[0].parts) == ["echo: look at "]
    state = await get_client(url=server_url).threads.get_state(event.task.context_id)
    blocks = state["values"]["messages"][0]["content"]
    assert blocks[0] == {"type": "text", "text": "look at "}
    assert blocks[1]["type"] == "image" and blocks[1]["mime_type"] == "image/png"
    assert base64.b64decode(blocks[1]["base64"]) == png and blocks[1]["extras"] == {"filename": "dot.png"}
    assert blocks[2] == {"type": "file", "url": "https://example.com/report.pdf", "mime_type": "application/pdf"}
    # And back: the user's message in the task's history has the same parts.
    history = (await client.get_task(GetTaskRequest(id=event.task.id))).history
    assert history[0].parts[1].raw == png and history[0].parts[1].media_type == "image/png"
    assert history[0].parts[2].url == "https://example.com/report.pdf"
    # A stream's first event shows the message as it was sent.
    streaming = await _client(server_url, "echo", version, streaming=True)
    clients.append(streaming)
    message.message_id = str(uuid.uuid4())
    [sent] = (await _events(streaming, SendMessageRequest(message=message)))[0].task.history
    assert sent.parts[1].raw == png and sent.parts[1].media_type == "image/png" and sent.parts[1].filename == "dot.png"
    assert sent.parts[2].url == "https://example.com/report.pdf" and sent.parts[2].media_type == "application/pdf"


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_streamed_answer_grows_then_completes(server_url, clients, version):
    client = await _client(server_url, "chat", version, streaming=True)
    clients.append(client)
    events = await _events(client, _text("hello there"))
    assert events[0].task.status.state == TaskState.TASK_STATE_SUBMITTED
    assert _texts(events[0].task.history[0].parts) == ["hello there"]
    growing = [_texts(e.status_update.status.message.parts)[0] for e in events
               if e.HasField("status_update") and e.status_update.status.state == TaskState.TASK_STATE_WORKING]
    assert len(growing) > 2 and growing[-1] == "fake reply to hello there"
    assert all(later.startswith(earlier) for earlier, later in zip(growing, growing[1:]))  # the message so far
    assert _texts(events[-2].artifact_update.artifact.parts) == ["fake reply to hello there"]
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    task_id = events[0].task.id
    assert {e.status_update.task_id for e in events if e.HasField("status_update")} == {task_id}


@pytest.mark.parametrize("streaming", [False, True], ids=["send", "stream"])
@pytest.mark.parametrize("version", VERSIONS)
async def test_a_task_waits_for_input_at_an_interrupt_and_the_answer_continues_it(
    server_url, clients, version, streaming
):
    client = await _client(server_url, "hitl", version, streaming=streaming)
    clients.append(client)
    events = await _events(client, _data({"topic": "cats"}))
    task_id, context_id = events[0].task.id, events[0].task.context_id
    if streaming:
        assert events[-1].status_update.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        artifact = events[-2].artifact_update.artifact
    else:
        assert events[0].task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        (artifact,) = events[0].task.artifacts
    assert artifact.name == "Interrupt"
    asked = json_format.MessageToDict(artifact.parts[0].data)
    assert asked["value"] == {"question": "approve?", "draft": "draft for cats"} and asked["id"]
    waiting = await client.get_task(GetTaskRequest(id=task_id))
    assert waiting.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    assert (await get_client(url=server_url).threads.get(context_id))["status"] == "interrupted"

    # The answer (text) resumes the graph in the same task.
    events = await _events(client, _text("yes", task_id=task_id, context_id=context_id))
    final = events[-1].status_update.status if streaming else events[0].task.status
    assert final.state == TaskState.TASK_STATE_COMPLETED
    done = await client.get_task(GetTaskRequest(id=task_id))
    assert done.status.state == TaskState.TASK_STATE_COMPLETED and _texts(done.artifacts[0].parts) == ["decision: yes"]
    state = await get_client(url=server_url).threads.get_state(context_id)
    assert state["values"]["decision"] == "yes"

    # A completed task takes no more messages.
    with pytest.raises(UnsupportedOperationError, match="completed"):
        await _events(client, _text("more", task_id=task_id, context_id=context_id))


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_task_waiting_for_input_is_canceled(server_url, clients, version):
    client = await _client(server_url, "hitl", version, streaming=False)
    clients.append(client)
    (first,) = await _events(client, _data({"topic": "birds"}))
    task = first.task
    assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    canceled = await client.cancel_task(CancelTaskRequest(id=task.id))
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED
    assert (await client.get_task(GetTaskRequest(id=task.id))).status.state == TaskState.TASK_STATE_CANCELED
    # The thread no longer waits, and keeps its values; the task takes no more answers.
    thread = await get_client(url=server_url).threads.get(task.context_id)
    assert thread["status"] == "idle" and thread["values"]["draft"] == "draft for birds"
    assert not (await get_client(url=server_url).threads.get_state(task.context_id))["next"]
    with pytest.raises(UnsupportedOperationError, match="canceled"):
        await _events(client, _text("yes", task_id=task.id, context_id=task.context_id))


async def test_a_structured_answer_resumes_with_its_value(server_url, clients):
    client = await _client(server_url, "hitl", "1.0", streaming=False)
    clients.append(client)
    (first,) = await _events(client, _data({"topic": "dogs"}))
    ids = {"task_id": first.task.id, "context_id": first.task.context_id}
    (answered,) = await _events(client, _data({"resume": {"approved": True, "note": "ok"}}, **ids))
    assert answered.task.status.state == TaskState.TASK_STATE_COMPLETED
    state = await get_client(url=server_url).threads.get_state(first.task.context_id)
    assert state["values"]["decision"] == {"approved": True, "note": "ok"}


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_failing_graph_fails_the_task_with_its_error(server_url, clients, version):
    client = await _client(server_url, "failing", version, streaming=False)
    clients.append(client)
    (event,) = await _events(client, _data({"reached": "start"}))
    assert event.task.status.state == TaskState.TASK_STATE_FAILED
    assert _texts(event.task.status.message.parts) == ["ValueError: intentional failure in node boom"]
    fetched = await client.get_task(GetTaskRequest(id=event.task.id))
    assert fetched.status.state == TaskState.TASK_STATE_FAILED
    assert _texts(fetched.status.message.parts) == ["ValueError: intentional failure in node boom"]
    streaming = await _client(server_url, "failing", version, streaming=True)
    clients.append(streaming)
    events = await _events(streaming, _data({"reached": "start"}))
    final = events[-1].status_update.status
    assert final.state == TaskState.TASK_STATE_FAILED
    assert _texts(final.message.parts) == ["ValueError: intentional failure in node boom"]


async def test_a_running_task_is_canceled_and_tasks_are_listed(server_url, clients):
    client = await _client(server_url, "slow", "1.0", streaming=False)
    clients.append(client)
    started = _data({"steps": 200, "delay": 0.05, "label": "a2a"})
    started.configuration.return_immediately = True  # answered as it starts, not when it ends
    (event,) = await _events(client, started)
    task = event.task
    assert task.status.state == TaskState.TASK_STATE_SUBMITTED
    canceled = await client.cancel_task(CancelTaskRequest(id=task.id))
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED
    assert (await client.get_task(GetTaskRequest(id=task.id))).status.state == TaskState.TASK_STATE_CANCELED
    with pytest.raises(TaskNotCancelableError, match="not cancelable"):
        await client.cancel_task(CancelTaskRequest(id=task.id))

    (done,) = await _events(client, _data({"steps": 1, "delay": 0, "label": "b"}, context_id=task.context_id))
    listed = await client.list_tasks(ListTasksRequest(context_id=task.context_id))
    assert [t.id for t in listed.tasks] == [done.task.id, task.id] and listed.total_size == 2
    only = await client.list_tasks(ListTasksRequest(context_id=task.context_id, status=TaskState.TASK_STATE_CANCELED))
    assert [t.id for t in only.tasks] == [task.id]
    paged = await client.list_tasks(ListTasksRequest(page_size=1))  # every context this assistant ran in
    assert len(paged.tasks) == 1 and paged.next_page_token == "1" and paged.total_size >= 2


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_client_whose_stream_broke_subscribes_to_the_task_again(server_url, clients, version):
    client = await _client(server_url, "slow", version, streaming=True)
    clients.append(client)
    async for event in client.send_message(_data({"steps": 6, "delay": 0.1, "label": "sub"})):
        task_id = event.task.id
        break  # the connection is lost after the first event; the task goes on
    events = [event async for event in client.subscribe(SubscribeToTaskRequest(id=task_id))]
    assert events[0].task.id == task_id
    assert events[0].task.status.state in (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    answer = json_format.MessageToDict(events[-2].artifact_update.artifact.parts[0].data)
    assert answer["log"] == [f"sub:{i}" for i in range(1, 7)]  # the graph's whole state, as data
    # A task that has ended has nothing more to send.
    with pytest.raises(UnsupportedOperationError, match="completed"):
        [event async for event in client.subscribe(SubscribeToTaskRequest(id=task_id))]


async def test_a_context_id_need_not_be_a_uuid(server_url, clients):
    client = await _client(server_url, "echo", "1.0", streaming=False)
    clients.append(client)
    context = f"conversation/{uuid.uuid4().hex[:8]}"
    (first,) = await _events(client, _text("one", context_id=context))
    assert first.task.context_id == context
    (second,) = await _events(client, _text("two", context_id=context))
    assert [_texts(m.parts)[0] for m in second.task.history] == ["one", "echo: one", "two", "echo: two"]
    assert (await client.get_task(GetTaskRequest(id=first.task.id))).context_id == context
    listed = await client.list_tasks(ListTasksRequest(context_id=context))
    assert [t.id for t in listed.tasks] == [second.task.id, first.task.id]
    assert not any(t.artifacts for t in listed.tasks)  # unless asked for
    # Each task's artifact is its own answer, the older one's too.
    listed = await client.list_tasks(ListTasksRequest(context_id=context, include_artifacts=True))
    assert [_texts(t.artifacts[0].parts) for t in listed.tasks] == [["echo: two"], ["echo: one"]]
    everywhere = await client.list_tasks(ListTasksRequest(page_size=100))
    assert {first.task.id, second.task.id} <= {t.id for t in everywhere.tasks}


async def _rpc(http: httpx.AsyncClient, assistant: str, body, **headers) -> httpx.Response:
    content = body if isinstance(body, bytes) else None
    return await http.post(f"/a2a/{assistant}", content=content, json=None if content else body,
                           headers={**ACCEPT, **headers})


def _send(message: dict, method: str = "message/send", rpc_id=1) -> dict:
    return {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": {"message": message}}


async def test_malformed_requests_get_json_rpc_errors(http):
    def error(response: httpx.Response) -> tuple[int, str]:
        assert response.status_code == 200, response.text
        body = response.json()
        return body["error"]["code"], body["error"]["message"]

    assert error(await _rpc(http, "echo", b"{not json")) == (-32700, "Invalid JSON payload")
    assert error(await _rpc(http, "echo", [1]))[0] == -32600
    assert error(await _rpc(http, "echo", {"jsonrpc": "1.0", "id": 1, "method": "tasks/get"}))[0] == -32600
    assert error(await _rpc(http, "echo", {"jsonrpc": "2.0", "id": 1, "method": "tasks/nope"})) == (
        -32601, "Method not found: tasks/nope")
    unknown = _send({"messageId": "m", "role": "user", "parts": [{"kind": "text", "text": "hi"}]})
    for assistant in ("no-such-graph", str(uuid.uuid4())):  # neither an id nor a graph; an id nobody has
        assert error(await _rpc(http, assistant, unknown)) == (-32602, f"Assistant '{assistant}' not found")
    not_an_object = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": []}
    assert error(await _rpc(http, "echo", not_an_object))[0] == -32602
    text = {"kind": "text", "text": "hi"}
    assert "messageId" in error(await _rpc(http, "echo", _send({"role": "user", "parts": [text]})))[1]
    assert "parts" in error(await _rpc(http, "echo", _send({"messageId": "m", "role": "user", "parts": []})))[1]
    unreadable = _send({"messageId": "m", "role": "user", "parts": [{"kind": "video"}]})
    assert error(await _rpc(http, "echo", unreadable))[0] == -32005
    # A graph without `messages` takes its input as data, not text.
    code, message = error(await _rpc(http, "slow", _send({"messageId": "m", "role": "user", "parts": [text]})))
    assert code == -32602 and "data part" in message and "steps" in message
    nobody = str(uuid.uuid4())
    assert error(await _rpc(http, nobody, _send({"messageId": "m", "role": "user", "parts": [text]})))[0] == -32602
    unknown = {"jsonrpc": "2.0", "id": "x", "method": "GetTask", "params": {"id": f"{uuid.uuid4()}:{uuid.uuid4()}"}}
    assert error(await _rpc(http, "echo", unknown))[0] == -32001
    assert error(await _rpc(http, "echo", {**unknown, "params": {"id": "nonsense"}}))[0] == -32001
    assert error(await _rpc(http, "echo", {**unknown, "params": {"id": 5}}))[0] == -32602
    assert error(await _rpc(http, "echo", {**unknown, "params": {"id": "a:b", "historyLength": -1}}))[0] == -32602
    # A response to a request the server never sent is acknowledged; the wrong Accept is a plain 400.
    assert (await _rpc(http, "echo", {"jsonrpc": "2.0", "id": 3, "result": {}})).status_code == 202
    wrong = await _rpc(http, "echo", _send({"messageId": "m", "role": "user", "parts": [text]}), Accept="text/html")
    assert wrong.status_code == 400 and "application/json" in wrong.json()["error"]
    stream = await _rpc(http, "echo", _send({"messageId": "m", "role": "user", "parts": [text]}, "message/stream"))
    assert stream.status_code == 400 and "text/event-stream" in stream.json()["error"]


async def test_a_stream_reports_a_bad_message_as_one_error_event(http):
    body = _send({"messageId": "m", "role": "user", "parts": [{"kind": "text", "text": "hi"}]}, "message/stream", 7)
    async with http.stream("POST", "/a2a/slow", json=body, headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        frames = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    assert len(frames) == 1
    event = json.loads(frames[0][len("data: "):])
    assert event["id"] == 7 and event["error"]["code"] == -32602


async def test_a_file_part_whose_fields_are_not_strings_is_refused(http):
    bad_parts = {
        "file.mimeType": {"kind": "file", "file": {"bytes": "aGk=", "mimeType": 5}},
        "file.uri": {"kind": "file", "file": {"uri": 5}},
        "file.name": {"kind": "file", "file": {"bytes": "aGk=", "name": {"x": 1}}},
        "mediaType": {"raw": "aGk=", "mediaType": 7},  # 1.0's part shape
        "raw": {"raw": None},
    }
    for field, part in bad_parts.items():
        sent = _send({"messageId": "m", "role": "user", "parts": [part]})
        answer = (await _rpc(http, "echo", sent)).json()
        assert answer["error"] == {"code": -32005, "message": f"A file part's '{field}' must be a string"}, part
        # A stream answers it the same way, as its one event.
        streamed = _send({"messageId": "m", "role": "user", "parts": [part]}, "message/stream")
        async with http.stream("POST", "/a2a/echo", json=streamed, headers={"Accept": "text/event-stream"}) as response:
            frames = [line async for line in response.aiter_lines() if line.startswith("data: ")]
        assert [json.loads(frame[len("data: "):]) for frame in frames] == [answer], part


async def test_an_agent_whose_graph_is_gone_answers_with_an_error(http, database_url):
    assistant = await leftover_assistant(database_url, "left behind")
    send = _send({"messageId": "m", "role": "user", "parts": [{"kind": "data", "data": {"x": 1}}]})
    answer = (await _rpc(http, assistant["assistant_id"], send)).json()
    assert answer["error"]["code"] == -32602 and "not loaded" in answer["error"]["message"]
