"""A thread's log (runs.stream.ThreadLog): the runs of its thread in turns, keyed alike in every process.

The events of a run that starts here wait for the end of the run before it, whose tail may still be being copied
from another process; each event's id is its run's creation time and its id in the run (thread_key)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from aegra_server.runs.stream import KEY_SPAN, StreamRegistry, thread_key

EARLIER = datetime(2026, 11, 30, 1, 2, 3, 456789, tzinfo=UTC)
LATER = EARLIER + timedelta(microseconds=1)


def _entries(log) -> list[tuple[int, str, object]]:
    return [(event.id, event.name, json.loads(event.data)) for event in log.events]


def test_keys_order_runs_by_creation_then_events_by_id() -> None:
    assert thread_key(LATER) - thread_key(EARLIER) == KEY_SPAN
    assert thread_key(EARLIER.replace(tzinfo=None)) == thread_key(EARLIER)  # SQLite's timestamps come back naive
    assert thread_key(EARLIER) + KEY_SPAN - 1 < thread_key(LATER)


async def test_a_run_starting_here_waits_for_the_tail_of_the_one_before_it() -> None:
    streams = StreamRegistry()
    log = streams.thread_log("t")
    before = thread_key(EARLIER)
    await log.wait_turn("elsewhere")  # its events are being copied in from the database
    log.add(before, "values", b'{"from": "elsewhere"}')

    here = streams.open("here", resumable=False, thread_id="t", created_at=LATER)
    here.append("values", b'{"from": "here"}')
    log.add(before + 1, "values", b'{"from": "elsewhere"}')  # the tail, copied late
    assert [data["from"] for _, _, data in _entries(log)] == ["elsewhere", "elsewhere"]

    log.mark_run_done("elsewhere", before + 2)
    log.end_turn("elsewhere")
    here.append("values", b'{"from": "here"}')
    streams.close("here")
    after = thread_key(LATER)
    assert _entries(log) == [
        (before, "values", {"from": "elsewhere"}),
        (before + 1, "values", {"from": "elsewhere"}),
        (before + 2, "metadata", {"status": "run_done", "run_id": "elsewhere"}),
        (after, "values", {"from": "here"}),
        (after + 1, "values", {"from": "here"}),
        (after + 2, "metadata", {"status": "run_done", "run_id": "here"}),
    ]
    assert list(log.ended) == ["elsewhere", "here"]


async def test_a_run_that_ended_while_it_waited_goes_in_whole_when_its_turn_comes() -> None:
    streams = StreamRegistry()
    log = streams.thread_log("t")
    await log.wait_turn("elsewhere")
    quick = streams.open("quick", resumable=False, thread_id="t", created_at=LATER)
    quick.append("values", b'{"n": 1}')
    streams.close("quick")
    copier = asyncio.create_task(log.wait_turn("later"))  # a third run, copied after
    await asyncio.sleep(0)
    log.mark_run_done("elsewhere", thread_key(EARLIER))
    log.end_turn("elsewhere")
    assert [(name, data.get("run_id", data.get("n"))) for _, name, data in _entries(log)] == [
        ("metadata", "elsewhere"), ("values", 1), ("metadata", "quick"),
    ]
    await asyncio.wait_for(copier, 1)
    assert log.writer == "later"


async def test_a_copy_cancelled_while_it_waits_gives_up_its_place() -> None:
    log = StreamRegistry().thread_log("t")
    await log.wait_turn("first")
    waiting = asyncio.create_task(log.wait_turn("gone"))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    log.end_turn("first")
    assert log.writer is None and log.waiting == []


def _run(streams: StreamRegistry, run_id: str, thread_id: str | None, size: int) -> None:
    stream = streams.open(run_id, resumable=False, thread_id=thread_id)
    stream.append("messages", b'"' + b"x" * (size - 2) + b'"')
    streams.close(run_id)


def test_finished_runs_past_their_byte_budget_go_oldest_first() -> None:
    streams = StreamRegistry(finished_bytes=1_000)
    for n in range(5):
        _run(streams, f"r{n}", None, 400)
    assert [streams.get(f"r{n}") is not None for n in range(5)] == [False, False, False, True, True]
    _run(streams, "huge", None, 5_000)  # alone past the budget: the latest is kept all the same
    assert streams.get("huge") is not None and streams.get("r4") is None


def test_thread_logs_past_their_byte_budget_go_least_recently_used_first_unless_in_use() -> None:
    streams = StreamRegistry(thread_log_bytes=1_000)
    followed = streams.thread_log("followed")
    with followed.followed():  # a reader is on it: it stays, however old
        for n, thread_id in enumerate(["followed", "a", "b", "c"]):
            _run(streams, f"r{n}", thread_id, 400)
        assert streams.watched_thread_log("followed") is followed and len(followed.events) == 2  # its event, run_done
        kept = {thread_id for thread_id in ("a", "b", "c") if streams.thread_log(thread_id).events}
    assert kept == {"c"}  # a and b went (what their ids asked for again is a new, empty log)
