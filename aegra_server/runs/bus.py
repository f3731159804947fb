"""Signals between the server processes that share one database.

- `wake`: there is work to claim (a run was created or a thread's run finished).
- `cancel`: payload "run_id:action", for the process that holds the run.
- `events`: payload run_id, new events of that run were persisted (or it ended).
- `state`: payload "sender thread_id key", a thread's state was edited (runs.state_updates).

One SQLite process delivers them in memory. Several processes on one SQLite file (`aegra serve --workers N`)
send them as datagrams to each other's Unix socket, in a folder named after the database. On Postgres they
travel as LISTEN/NOTIFY on one dedicated connection per process. Either way every process, the sender
included, receives them; a lost signal only delays work, since the claim loop and event readers also poll.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from aegra_server.storage.connections import log_failure

log = logging.getLogger("aegra.bus")

CHANNELS = ("aegra_wake", "aegra_cancel", "aegra_events", "aegra_state")
CONNECT_TIMEOUT = 5  # seconds; a signal waits at most this for a database that went away
Listener = Callable[[str], None]


class LocalBus:
    """In-process delivery: enough when one server process owns the database."""

    shared = False

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = defaultdict(list)

    def listen(self, channel: str, listener: Listener) -> None:
        self._listeners[channel].append(listener)

    def unlisten(self, channel: str, listener: Listener) -> None:
        with suppress(ValueError):
            self._listeners[channel].remove(listener)

    def _deliver(self, channel: str, payload: str) -> None:
        for listener in list(self._listeners[channel]):
            try:
                listener(payload)
            except Exception:  # one broken listener must not starve the others
                log.exception("listener on %s failed", channel)

    async def notify(self, channel: str, payload: str = "") -> None:
        self._deliver(channel, payload)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class PostgresBus(LocalBus):
    """LISTEN/NOTIFY; both connections come back after a drop (a database restart), and missed signals are covered
    by polling."""

    shared = True

    def __init__(self, conninfo: str) -> None:
        super().__init__()
        self._conninfo = conninfo
        self._task: asyncio.Task | None = None
        self._sender = None
        self._send_lock = asyncio.Lock()

    async def _connect(self):
        import psycopg

        return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT)

    async def start(self) -> None:
        self._sender = await self._connect()
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._listen(ready))
        await asyncio.wait_for(ready.wait(), 30)

    async def _listen(self, ready: asyncio.Event) -> None:
        while True:
            try:
                async with await self._connect() as conn:
                    for channel in CHANNELS:
                        await conn.execute(f"LISTEN {channel}")
                    ready.set()
                    async for note in conn.notifies():
                        self._deliver(note.channel, note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log_failure(log, logging.WARNING, "lost the LISTEN connection; reconnecting", exc)
                await asyncio.sleep(1)

    async def notify(self, channel: str, payload: str = "") -> None:
        """Never raises: a signal follows a write that is already committed, which must not be reported as failed
        because its signal was not sent. A dropped connection is replaced, and the signal sent once more."""
        import psycopg

        async with self._send_lock:
            for attempt in (1, 2):
                try:
                    if self._sender is None or self._sender.closed:
                        self._sender = await self._connect()
                    await self._sender.execute("SELECT pg_notify(%s, %s)", (channel, payload))
                    return
                except psycopg.Error as exc:
                    if self._sender is not None:
                        await self._sender.close()
                    if attempt == 2:
                        log.warning("signal %s not sent (polling will catch up): %s", channel, exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self._sender is not None:
            await self._sender.close()


class SocketBus(LocalBus):
    """Datagrams between the processes that share one SQLite file on this machine.

    Each process binds a Unix datagram socket in the `sockets` folder inside the database's folder
    (storage.sqlite_sharing, whose lock files must never be taken for sockets); a signal goes to this process's
    listeners directly and to every other socket there. A socket left by a process that died
    refuses the datagram and is removed. Datagrams cost microseconds and need no broker, no polling and no
    writes to the database, which SQLite serialises.
    """

    shared = True

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self._sockets = folder / "sockets"
        self._path: Path | None = None
        self._sock: socket.socket | None = None

    async def start(self) -> None:
        self._sockets.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._path = self._sockets / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self._path))
        self._sock.setblocking(False)
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._receive)

    def _receive(self) -> None:
        while True:
            try:
                message = self._sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            channel, _, payload = message.decode().partition("\n")
            self._deliver(channel, payload)

    async def notify(self, channel: str, payload: str = "") -> None:
        self._deliver(channel, payload)
        if self._sock is None:  # stopped (or not started): the others will find out by polling
            return
        message = f"{channel}\n{payload}".encode()
        with os.scandir(self._sockets) as peers:
            for peer in peers:
                if peer.path == str(self._path):
                    continue
                try:
                    self._sock.sendto(message, peer.path)
                except (ConnectionRefusedError, FileNotFoundError):
                    with suppress(FileNotFoundError):
                        os.unlink(peer.path)  # its process is gone
                except OSError as exc:  # a full queue (the peer is stalled): polling covers the lost signal
                    log.debug("signal %s to %s lost: %s", channel, peer.name, exc)

    async def stop(self) -> None:
        if self._sock is None:
            return
        asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        with suppress(FileNotFoundError):
            self._path.unlink()
