"""Where a run's CPU goes: the server's CPU time per request of each kind, against the floor's per run.

    .venv/bin/python benchmarks/cpu_per_request.py [--seconds 5] [--clients 32] [--workers N]

throughput.py says how far the server is from the floor; this says what each part costs. Under `--clients` raw
keep-alive clients (throughput.py's), for `--seconds` each, it measures the CPU time the server's processes
spent (user + system, from /proc: Linux only) divided by the requests they answered, for:

- `GET /ok`: HTTP, the middleware stack and routing, nothing else;
- `POST /threads`: one validated body and one insert;
- `POST /threads` then `POST /threads/{id}/runs/wait`: throughput.py's iteration;

and the floor's own CPU time per `ainvoke` (throughput.py's floor, in this process). One process runs on one
core at most (the GIL), so its CPU per iteration bounds its throughput: 1 / (CPU per iteration).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from throughput import RawConnection, _free_port, floor, start_server, through_server


def _cpu_seconds(pids: list[int]) -> float:
    """User + system time of every thread of these processes so far."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # a thread that ended meanwhile
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _pids_of(server_pid: int) -> list[int]:
    """The server and its worker processes (`aegra serve --workers N` runs them as its children)."""
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    return [server_pid, *map(int, children)]


async def _load(one: Callable[[], Awaitable[None]], clients: int, seconds: float) -> int:
    """`clients` loops calling `one` for `seconds`: how many calls finished."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await one()
            done += 1

    await asyncio.gather(*(loop() for _ in range(clients)))
    return done


def _raw_requests(url: str):
    """One-request functions per kind, each taking a keep-alive connection from a shared pool."""
    idle: list[RawConnection] = []

    async def with_connection(send) -> None:
        conn = idle.pop() if idle else RawConnection(url)
        await send(conn)
        idle.append(conn)

    async def ok(conn: RawConnection) -> None:
        status, _ = await conn.get("/ok")
        assert status == 200

    async def thread(conn: RawConnection) -> None:
        status, _ = await conn.post("/threads", {})
        assert status == 200

    return {"GET /ok": lambda: with_connection(ok), "POST /threads": lambda: with_connection(thread)}, idle


async def measure(url: str, pids: list[int], clients: int, seconds: float) -> list[tuple[str, float, float]]:
    """(label, requests per second, CPU ms per request) for each kind of request."""
    rows = []
    kinds, idle = _raw_requests(url)
    async with through_server([url], clients, "raw") as iteration:
        kinds["POST /threads + runs/wait"] = iteration
        for label, one in kinds.items():
            await _load(one, clients, min(1.0, seconds))  # warm-up: connections, pools, SQLite pages
            before, started = _cpu_seconds(pids), time.perf_counter()
            count = await _load(one, clients, seconds)
            elapsed, cpu = time.perf_counter() - started, _cpu_seconds(pids) - before
            rows.append((f"server, {label}", count / elapsed, cpu / count * 1000))
    for conn in idle:
        conn.close()
    return rows


async def measure_floor(database_url: str, clients: int, seconds: float) -> tuple[str, float, float]:
    async with floor(database_url) as one:
        await _load(one, clients, min(1.0, seconds))
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        count = await _load(one, clients, seconds)
        elapsed, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return "floor, ainvoke", count / elapsed, cpu / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="aegra serve --workers")
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        raise SystemExit("this benchmark reads the server's CPU time from /proc: Linux only")
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        server = start_server(f"sqlite:///{tmp}/server.db", port, args.workers)
        try:
            rows = asyncio.run(measure(f"http://127.0.0.1:{port}", _pids_of(server.pid), args.clients, args.seconds))
        finally:
            server.terminate()
            server.wait(timeout=30)
        rows.append(asyncio.run(measure_floor(f"sqlite:///{tmp}/floor.db", args.clients, args.seconds)))
    print(f"{'':40} {'per s':>9} {'CPU ms':>9}")
    for label, rate, cpu_ms in rows:
        print(f"{label:40} {rate:9.1f} {cpu_ms:9.3f}")


if __name__ == "__main__":
    main()
