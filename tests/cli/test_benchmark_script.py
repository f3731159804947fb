"""The benchmark scripts run end to end (tiny numbers) and report every subject: throughput.py (the floor,
the server with two workers, both clients, the ratios), checkpointer_lock.py (both savers) and
cpu_per_request.py (each kind of request, and the floor)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str, timeout: float) -> tuple[str, list[str]]:
    """The script's output and the labels of its table rows."""
    done = subprocess.run(
        [sys.executable, f"benchmarks/{script}", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-2000:]
    labels = [line.split("  ")[0] for line in done.stdout.splitlines() if "," in line.split("  ")[0]]
    return done.stdout, labels


def test_the_throughput_benchmark_runs_and_reports_every_subject():
    stdout, labels = _run(
        "throughput.py", "--runs", "8", "--clients", "2", "--rounds", "2", "--workers", "2", timeout=180
    )
    assert labels == [
        "floor, sequential",
        "server ×2 workers (httpx), sequential",
        "server ×2 workers (raw), sequential",
        "floor, 2 concurrent",
        "server ×2 workers (httpx), 2 concurrent",
        "server ×2 workers (raw), 2 concurrent",
    ]
    for client in ("httpx", "raw"):
        assert f"{client}: sequential p50 server / floor = " in stdout
        assert f"{client}: throughput at 2 clients server / floor = " in stdout


def test_the_checkpointer_lock_benchmark_runs_and_reports_both_savers():
    _, labels = _run("checkpointer_lock.py", "--runs", "8", "--clients", "2", "--rounds", "1", timeout=120)
    assert labels == [
        "AsyncSqliteSaver, sequential",
        "SqliteCheckpointer, sequential",
        "AsyncSqliteSaver, 2 concurrent",
        "SqliteCheckpointer, 2 concurrent",
    ]


def test_the_cpu_per_request_benchmark_runs_and_reports_every_kind():
    stdout, labels = _run("cpu_per_request.py", "--seconds", "0.3", "--clients", "2", timeout=180)
    assert labels == [
        "server, GET /ok",
        "server, POST /threads",
        "server, POST /threads + runs/wait",
        "floor, ainvoke",
    ]
    cpu_ms = [float(line.split()[-1]) for line in stdout.splitlines() if line.startswith(("server,", "floor,"))]
    assert all(value > 0 for value in cpu_ms), stdout
