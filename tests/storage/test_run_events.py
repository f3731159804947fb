"""A run's streamed events, stored for readers in other processes (RunRepository.append_events)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from aegra_server import migrations
from aegra_server.storage.database import Database
from aegra_server.storage.runs import RunRepository
from aegra_server.storage.tables import runs, threads
from aegra_server.storage.urls import parse_database_url


@pytest.fixture
async def repo(database_url: str):
    migrations.upgrade(database_url)
    db = Database(parse_database_url(database_url))
    yield RunRepository(db)
    await db.close()


async def _a_run(repo: RunRepository, thread_id: str | None = None) -> str:
    """A run, on a new thread unless `thread_id` names one made before."""
    now = datetime.now(UTC)
    new_thread, run_id = thread_id is None, str(uuid.uuid4())
    thread_id = thread_id or str(uuid.uuid4())

    def write(conn) -> None:
        if new_thread:
            conn.execute(insert(threads), {
                "thread_id": thread_id, "status": "busy", "metadata": {}, "config": {}, "interrupts": {},
                "created_at": now, "updated_at": now,
            })
        conn.execute(insert(runs), {
            "run_id": run_id, "thread_id": thread_id, "assistant_id": str(uuid.uuid4()), "status": "running",
            "metadata": {}, "kwargs": {}, "multitask_strategy": "enqueue", "created_at": now, "updated_at": now,
            "available_at": now, "attempt": 1,
        })

    await repo.db.write(write)
    return run_id


def _events(run_id: str, *seqs: int) -> list[dict]:
    return [{"run_id": run_id, "seq": seq, "event": "values", "data": b'{"n": %d}' % seq} for seq in seqs]


async def test_events_of_a_run_deleted_meanwhile_are_dropped_and_the_batch_stored(
    repo: RunRepository, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch with events of a run deleted while they were on their way (with its thread, say): the other runs'
    events are stored, that run's go nowhere, and nothing fails (on Postgres psycopg logged an aborted pipeline)."""
    kept, deleted = await _a_run(repo), await _a_run(repo)
    await repo.delete(deleted)

    with caplog.at_level(logging.WARNING):
        await repo.append_events(_events(kept, 0, 1) + _events(deleted, 0, 1, 2) + _events(kept, 2))

    assert [seq for seq, _, _ in await repo.read_events(kept, 0)] == [0, 1, 2]
    assert await repo.read_events(deleted, 0) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_a_thread_s_last_events_across_its_runs_in_the_order_it_ran_them(repo: RunRepository) -> None:
    first = await _a_run(repo)
    thread_id = (await repo.get(first))["thread_id"]
    second = await _a_run(repo, thread_id)
    await repo.append_events(_events(first, 0, 1, 2) + _events(second, 0, 1))

    last_three = await repo.thread_events(thread_id, datetime(1970, 1, 1, tzinfo=UTC), 3)
    assert [(run_id, seq) for run_id, _, seq, _, _ in last_three] == [(first, 2), (second, 0), (second, 1)]
    everything = await repo.thread_events(thread_id, datetime(1970, 1, 1, tzinfo=UTC), 100)
    assert [(run_id, seq) for run_id, _, seq, _, _ in everything] == [
        (first, 0), (first, 1), (first, 2), (second, 0), (second, 1)
    ]


async def _end(repo: RunRepository, run_id: str) -> None:
    run = await repo.get(run_id)
    await repo.finish(run, status="success", thread_status="idle", values={}, interrupts={})


async def test_events_of_threads_idle_since_a_time_are_forgotten_in_batches_others_kept(repo: RunRepository) -> None:
    """By thread: the ended runs of threads unchanged since the time lose their events, a thread's running run keeps
    its own; threads that changed since keep theirs; a thread taken once is taken again only after it changed."""
    a1 = await _a_run(repo)
    a_thread = (await repo.get(a1))["thread_id"]
    a2 = await _a_run(repo, a_thread)
    b = await _a_run(repo)
    c_ended = await _a_run(repo)
    c_thread = (await repo.get(c_ended))["thread_id"]
    for run_id in (a1, a2, b, c_ended):
        await _end(repo, run_id)
    c_running = await _a_run(repo, c_thread)
    idle_since = datetime.now(UTC)
    d = await _a_run(repo)
    await _end(repo, d)  # its thread changed after the time
    await repo.append_events([e for run_id in (a1, a2, b, c_ended, c_running, d) for e in _events(run_id, 0, 1)])

    taken, where = await repo.forget_events(idle_since, None, limit=2)
    assert taken == 2
    taken, where = await repo.forget_events(idle_since, where, limit=2)
    assert taken == 1  # the one left, not the two forgotten again
    assert await repo.forget_events(idle_since, where, limit=2) == (0, where)

    assert [await repo.read_events(run_id, 0) for run_id in (a1, a2, b, c_ended)] == [[], [], [], []]
    assert len(await repo.read_events(c_running, 0)) == 2  # still running
    assert len(await repo.read_events(d, 0)) == 2  # its thread changed since
    assert (await repo.get(a1))["status"] == "success"  # the run itself stays

    # A thread used again moves past where the sweep stopped, and is taken again once it is idle.
    a3 = await _a_run(repo, a_thread)
    await _end(repo, a3)
    await repo.append_events(_events(a3, 0))
    taken, _ = await repo.forget_events(datetime.now(UTC), where, limit=5)
    assert taken == 2  # a's thread again, and d's, idle now too
    assert await repo.read_events(a3, 0) == [] and await repo.read_events(d, 0) == []
    assert len(await repo.read_events(c_running, 0)) == 2
