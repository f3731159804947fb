"""GET /threads/{id}/stream: every run on a thread, with ids, resumable with Last-Event-ID."""

from __future__ import annotations

import asyncio

from helpers import default_assistant_id, human, new_thread


async def _collect(client, thread_id: str, until_done: int, **kwargs) -> list:
    parts = []
    done = 0
    async for part in await client.threads.join_stream(thread_id, **kwargs):
        parts.append(part)
        if part.event == "metadata" and part.data.get("status") == "run_done":
            done += 1
            if done == until_done:
                break
    return parts


async def test_thread_stream_follows_every_run(client):
    thread_id = await new_thread(client)
    follower = asyncio.create_task(asyncio.wait_for(_collect(client, thread_id, until_done=2), 30))
    await asyncio.sleep(0.3)  # the follower is subscribed before the runs start
    first = await client.runs.create(thread_id, "echo", input=human("one"))
    second = await client.runs.create(thread_id, "echo", input=human("two"))
    parts = await follower
    starts = [p.data["run_id"] for p in parts if p.event == "metadata" and "attempt" in p.data]
    ends = [p.data["run_id"] for p in parts if p.event == "metadata" and p.data.get("status") == "run_done"]
    assert starts == [first["run_id"], second["run_id"]]
    assert ends == [first["run_id"], second["run_id"]]
    last_values = [p.data for p in parts if p.event == "values"][-1]
    assert [m["content"] for m in last_values["messages"]] == ["one", "echo: one", "two", "echo: two"]
    ids = [int(p.id) for p in parts]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_thread_stream_resumes_after_last_event_id(client, http):
    thread_id = await new_thread(client)
    follower = asyncio.create_task(asyncio.wait_for(_collect(client, thread_id, until_done=1), 30))
    await asyncio.sleep(0.3)
    await client.runs.create(thread_id, "echo", input=human("x"))
    parts = await follower
    middle = parts[1]
    replay = await asyncio.wait_for(
        _collect(client, thread_id, until_done=1, last_event_id=middle.id), 30
    )
    assert [(p.id, p.event) for p in replay] == [(p.id, p.event) for p in parts[2:]]


async def test_thread_stream_lifecycle_mode_and_both_parameter_names(client, http):
    thread_id = await new_thread(client)

    async def lifecycle(param: str) -> list[str]:
        names = []
        async with http.stream("GET", f"/threads/{thread_id}/stream", params={param: "lifecycle"},
                               headers={"Last-Event-ID": "-1"}) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    names.append(line[len("event: "):])
                if line.startswith("data: ") and "run_done" in line:
                    return names
        return names

    await client.runs.wait(thread_id, "echo", input=human("y"))
    for param in ("stream_mode", "stream_modes"):
        assert set(await asyncio.wait_for(lifecycle(param), 10)) == {"metadata"}


async def test_thread_stream_state_update_mode_sends_each_edit_of_the_state(client, http):
    """As langgraph-api: `state_update` events, `{"state": <the thread's state>, "thread_id"}`, after each edit of
    the state, only to readers asking for that mode (with the SDK's `stream_mode`, or `stream_modes=a,b`)."""
    thread_id = await _echo_thread(client, "one")

    async def follow(modes, until: int) -> list:
        parts = []
        async for part in await client.threads.join_stream(thread_id, stream_mode=modes):
            parts.append(part)
            if len(parts) == until:
                return parts
        return parts

    only_updates = asyncio.create_task(asyncio.wait_for(follow("state_update", 2), 30))
    both = asyncio.create_task(asyncio.wait_for(follow(["run_modes", "state_update"], 3), 30))
    runs_only = asyncio.create_task(asyncio.wait_for(follow("run_modes", 1), 30))
    await asyncio.sleep(0.3)
    await client.threads.update_state(thread_id, {"messages": [{"role": "human", "content": "edited"}]}, as_node="echo")
    await client.runs.wait(thread_id, "echo", input=human("two"))
    await client.threads.update_state(thread_id, {"messages": [{"role": "human", "content": "again"}]}, as_node="echo")

    first, second = await only_updates
    assert (first.event, second.event) == ("state_update", "state_update")
    assert first.data["thread_id"] == thread_id
    assert first.data["state"] == await client.threads.get_state(thread_id, checkpoint_id=first.data["state"]["checkpoint"]["checkpoint_id"])
    assert [m["content"] for m in second.data["state"]["values"]["messages"]][-1] == "again"
    assert int(first.id) < int(second.id)
    assert [p.event for p in await both] == ["state_update", "metadata", "values"]
    assert [p.event for p in await runs_only] == ["metadata"]

    # stream_modes as langgraph-api reads it, comma-separated
    async with http.stream("GET", f"/threads/{thread_id}/stream", params={"stream_modes": "lifecycle,state_update"},
                           headers={"Last-Event-ID": first.id}) as response:
        names = []
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                names.append(line[len("event: "):])
            if len(names) == 3:
                break
    assert names == ["metadata", "metadata", "state_update"]


async def _echo_thread(client, *messages: str) -> str:
    thread_id = await new_thread(client)
    for text in messages:
        await client.runs.wait(thread_id, "echo", input=human(text))
    return thread_id


async def test_thread_stream_of_unknown_thread_is_404(http):
    response = await http.get("/threads/00000000-0000-4000-8000-000000000000/stream")
    assert response.status_code == 404
    assert default_assistant_id("echo")  # the helpers module is importable from here
