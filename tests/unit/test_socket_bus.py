"""The signals between worker processes on one SQLite file: real Unix datagram sockets in a real folder."""

from __future__ import annotations

import asyncio
import socket

import pytest

from aegra_server.errors import ConfigError
from aegra_server.runs.bus import SocketBus
from aegra_server.storage.sqlite_sharing import serving
from aegra_server.storage.urls import parse_database_url


async def _received(bus: SocketBus, channel: str) -> asyncio.Queue:
    queue: asyncio.Queue = asyncio.Queue()
    bus.listen(channel, queue.put_nowait)
    return queue


async def test_a_signal_reaches_every_process_the_sender_included(tmp_path):
    a, b, c = (SocketBus(tmp_path / "bus") for _ in range(3))
    for bus in (a, b, c):
        await bus.start()
    try:
        queues = [await _received(bus, "aegra_events") for bus in (a, b, c)]
        other_channel = await _received(b, "aegra_wake")
        await a.notify("aegra_events", "run-1")
        for queue in queues:
            assert await asyncio.wait_for(queue.get(), 5) == "run-1"
        await c.notify("aegra_cancel", "run-2:rollback")  # nobody listens there: nothing else arrives
        await asyncio.sleep(0.05)
        assert other_channel.empty() and all(q.empty() for q in queues)
    finally:
        for bus in (a, b, c):
            await bus.stop()
    assert list((tmp_path / "bus" / "sockets").iterdir()) == []  # each removed its socket
    await a.notify("aegra_events", "late")  # after stopping, as a run ending during shutdown may: only here
    assert await asyncio.wait_for(queues[0].get(), 1) == "late"


async def test_the_socket_of_a_dead_process_is_removed(tmp_path):
    folder = tmp_path / "bus"
    bus = SocketBus(folder)
    await bus.start()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(folder / "sockets" / "999999-deadbeef"))
    dead.close()  # its file stays, as after a SIGKILL
    try:
        await bus.notify("aegra_wake")
        assert [p.name for p in (folder / "sockets").iterdir()] == [bus._path.name]
    finally:
        await bus.stop()


async def test_a_signal_leaves_the_servers_lock_files_alone(tmp_path):
    """The bus shares the database's folder with the lock files that refuse a second server: a signal once took
    them for dead sockets and deleted them, after which a second server started on the same file."""
    database = tmp_path / "shared.db"
    url = parse_database_url(f"sqlite:///{database}")
    with serving(url, workers=2) as folder:
        bus = SocketBus(folder)
        await bus.start()
        try:
            await bus.notify("aegra_wake")
        finally:
            await bus.stop()
        assert (folder / "server.lock").exists()
        with pytest.raises(ConfigError, match="another Aegra server is already serving"):
            with serving(url, workers=1):
                pass

