"""Thread time to live: `ttl` on create/update, `include=ttl`, and the sweeper deleting expired threads."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest

from helpers import eventually, human


async def _gone(client, thread_id: str) -> bool:
    try:
        await client.threads.get(thread_id)
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code == 404
    return False


async def test_expired_thread_is_swept_with_its_state(client):
    thread = await client.threads.create(ttl={"ttl": 0.01, "strategy": "delete"})  # 0.6 s
    await client.runs.wait(thread["thread_id"], "echo", input=human("short-lived"))
    await eventually(lambda: _gone(client, thread["thread_id"]), timeout=10)
    # re-created under the same id, it starts empty: the checkpoints went with it
    await client.threads.create(thread_id=thread["thread_id"])
    assert (await client.threads.get_state(thread["thread_id"]))["values"] == {}


async def test_ttl_shows_with_include_and_a_number_is_minutes(http):
    created = (await http.post("/threads", json={"ttl": 30})).json()
    got = (await http.get(f"/threads/{created['thread_id']}", params={"include": "ttl"})).json()
    assert got["ttl"]["ttl"] == 30 and got["ttl"]["strategy"] == "delete"
    expires = datetime.fromisoformat(got["ttl"]["expires_at"])
    assert expires.utcoffset() == timedelta(0)  # UTC, and says so
    assert timedelta(minutes=29) < expires - datetime.fromisoformat(created["created_at"]) < timedelta(minutes=31)
    plain = (await http.get(f"/threads/{created['thread_id']}")).json()
    assert "ttl" not in plain
    no_ttl = (await http.post("/threads", json={})).json()
    assert (await http.get(f"/threads/{no_ttl['thread_id']}", params={"include": "ttl"})).json()["ttl"] is None


async def test_update_restarts_the_ttl(client, http):
    thread = await client.threads.create(ttl=0.01)
    await client.threads.update(thread["thread_id"], metadata={"kept": True}, ttl=60)
    got = (await http.get(f"/threads/{thread['thread_id']}", params={"include": "ttl"})).json()
    assert got["ttl"]["ttl"] == 60 and got["metadata"]["kept"] is True
    assert not await _gone(client, thread["thread_id"])


@pytest.mark.parametrize("ttl", [0, -1, {"ttl": 5, "strategy": "keep_latest"}, "soon"])
async def test_invalid_ttl_is_422(http, ttl):
    response = await http.post("/threads", json={"ttl": ttl})
    assert response.status_code == 422
    assert "ttl" in str(response.json()["detail"])
