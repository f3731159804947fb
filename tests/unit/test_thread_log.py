"""A thread's log takes the runs of its thread in turns (runs.stream.ThreadLog): the events of a run that starts
here wait for the end of the run before it, whose tail may still be being copied from another process."""

from __future__ import annotations

import asyncio
import json

from aegra_server.runs.stream import StreamRegistry


def _entries(log) -> list[tuple[str, object]]:
    return [(event.name, json.loads(event.data)) for event in log.events]


async def test_a_run_starting_here_waits_for_the_tail_of_the_one_before_it() -> None:
    streams = StreamRegistry()
    log = streams.thread_log("t")
    await log.wait_turn("elsewhere")  # its events are being copied in from the database
    log.append("values", b'{"from": "elsewhere", "n": 1}')

    here = streams.open("here", resumable=False, thread_id="t")
    here.append("values", b'{"from": "here", "n": 1}')
    log.append("values", b'{"from": "elsewhere", "n": 2}')  # the tail, copied late
    assert [data["from"] for _, data in _entries(log)] == ["elsewhere", "elsewhere"]

    log.mark_run_done("elsewhere")
    log.end_turn("elsewhere")
    here.append("values", b'{"from": "here", "n": 2}')
    streams.close("here")
    assert _entries(log) == [
        ("values", {"from": "elsewhere", "n": 1}),
        ("values", {"from": "elsewhere", "n": 2}),
        ("metadata", {"status": "run_done", "run_id": "elsewhere"}),
        ("values", {"from": "here", "n": 1}),
        ("values", {"from": "here", "n": 2}),
        ("metadata", {"status": "run_done", "run_id": "here"}),
    ]
    assert list(log.ended) == ["elsewhere", "here"]


async def test_a_run_that_ended_while_it_waited_goes_in_whole_when_its_turn_comes() -> None:
    streams = StreamRegistry()
    log = streams.thread_log("t")
    await log.wait_turn("elsewhere")
    quick = streams.open("quick", resumable=False, thread_id="t")
    quick.append("values", b'{"n": 1}')
    streams.close("quick")
    copier = asyncio.create_task(log.wait_turn("later"))  # a third run, copied after
    await asyncio.sleep(0)
    log.mark_run_done("elsewhere")
    log.end_turn("elsewhere")
    assert [(name, data.get("run_id", data.get("n"))) for name, data in _entries(log)] == [
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
