"""Human in the loop: a graph that calls interrupt() pauses, reports the interrupt everywhere a client looks,
and resumes with the value the human gives."""

from __future__ import annotations

from tests.server.helpers import new_thread, texts

QUESTION = {"question": "approve?", "draft": "draft for cats"}


async def _paused(client) -> tuple[str, dict]:
    thread_id = await new_thread(client)
    output = await client.runs.wait(thread_id, "hitl", input={"topic": "cats"})
    return thread_id, output


async def test_interrupt_pauses_and_is_reported_everywhere(client):
    thread_id, output = await _paused(client)
    [interrupt] = output["__interrupt__"]
    assert interrupt["value"] == QUESTION
    assert set(interrupt) == {"id", "value"}  # as langgraph-api: no `response_schema: null`
    interrupt_id = interrupt["id"]
    assert output["draft"] == "draft for cats" and "decision" not in output

    [run] = await client.runs.list(thread_id)
    assert run["status"] == "success"  # pausing is not failing
    assert await client.runs.join(thread_id, run["run_id"]) == output  # joined after it ended: the same answer

    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    assert "__interrupt__" not in thread["values"]
    [(task_id, [by_task])] = thread["interrupts"].items()
    assert by_task == {**interrupt, "id": interrupt_id}

    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["ask"]
    # the deprecated flat ids older clients read, as langgraph-api still sends them
    assert state["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
    assert state["parent_checkpoint_id"] == state["parent_checkpoint"]["checkpoint_id"]
    [task] = state["tasks"]
    assert task["id"] == task_id and task["name"] == "ask"
    assert [i["id"] for i in task["interrupts"]] == [interrupt_id]
    assert [i["value"] for i in state["interrupts"]] == [QUESTION]

    history = await client.threads.get_history(thread_id, limit=1)
    assert history[0]["tasks"][0]["interrupts"][0]["id"] == interrupt_id


async def test_interrupt_in_raw_wait_output(http):
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    response = await http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "hitl", "input": {"topic": "cats"}})
    assert response.status_code == 200
    body = response.json()
    assert body["__interrupt__"][0]["value"] == QUESTION
    assert set(body) == {"messages", "topic", "draft", "__interrupt__"}


async def test_resume_with_a_structured_value(client):
    thread_id, _ = await _paused(client)
    decision = {"approved": True, "notes": ["short", "clear"], "score": 4.5}
    output = await client.runs.wait(thread_id, "hitl", command={"resume": decision})
    assert "__interrupt__" not in output
    assert output["decision"] == decision
    assert texts(output) == [f"decision: {decision}"]
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["interrupts"] == {}
    assert thread["values"]["decision"] == decision
    assert [r["status"] for r in await client.runs.list(thread_id)] == ["success", "success"]


async def test_resume_by_interrupt_id(client):
    thread_id, output = await _paused(client)
    interrupt_id = output["__interrupt__"][0]["id"]
    done = await client.runs.wait(thread_id, "hitl", command={"resume": {interrupt_id: "by id"}})
    assert done["decision"] == "by id"


async def test_resume_while_streaming(client):
    thread_id, _ = await _paused(client)
    parts = [
        p
        async for p in client.runs.stream(
            thread_id, "hitl", command={"resume": "streamed"}, stream_mode=["updates", "values"]
        )
    ]
    updates = [p.data for p in parts if p.event == "updates"]
    assert [list(u) for u in updates] == [["ask"], ["finish"]]
    assert updates[0]["ask"] == {"decision": "streamed"}
    assert parts[-1].event == "values" and parts[-1].data["decision"] == "streamed"


async def test_state_edit_while_paused_then_resume(client):
    thread_id, _ = await _paused(client)
    await client.threads.update_state(thread_id, {"draft": "edited draft"})
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["ask"]  # `ask` still has to run
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    # `ask` runs again on the edited state; the resume value answers its interrupt
    output = await client.runs.wait(thread_id, "hitl", command={"resume": "ok"})
    assert output["draft"] == "edited draft"
    assert output["decision"] == "ok"


async def test_canceling_a_queued_run_leaves_the_thread_waiting_at_its_interrupt(client):
    """A run queued on a paused thread and canceled before it starts changed nothing: the thread still waits."""
    thread_id, _ = await _paused(client)
    queued = await client.runs.create(thread_id, "hitl", input=None, after_seconds=600)
    assert (await client.threads.get(thread_id))["status"] == "busy"
    await client.runs.cancel(thread_id, queued["run_id"], wait=True)
    assert (await client.runs.get(thread_id, queued["run_id"]))["status"] == "interrupted"
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted" and thread["interrupts"]
