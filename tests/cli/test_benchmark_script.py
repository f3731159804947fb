"""benchmarks/throughput.py runs end to end (tiny numbers): the floor, the server (two workers) with both clients,
the ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_throughput_benchmark_runs_and_reports_every_subject():
    done = subprocess.run(
        [sys.executable, "benchmarks/throughput.py", "--runs", "8", "--clients", "2", "--rounds", "2",
         "--workers", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    labels = [line.split("  ")[0] for line in done.stdout.splitlines() if "," in line.split("  ")[0]]
    assert labels == [
        "floor, sequential",
        "server ×2 workers (httpx), sequential",
        "server ×2 workers (raw), sequential",
        "floor, 2 concurrent",
        "server ×2 workers (httpx), 2 concurrent",
        "server ×2 workers (raw), 2 concurrent",
    ]
    for client in ("httpx", "raw"):
        assert f"{client}: sequential p50 server / floor = " in done.stdout
        assert f"{client}: throughput at 2 clients server / floor = " in done.stdout


def test_the_checkpointer_lock_benchmark_runs_and_reports_both_savers():
    done = subprocess.run(
        [sys.executable, "benchmarks/checkpointer_lock.py", "--runs", "8", "--clients", "2", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    labels = [line.split("  ")[0] for line in done.stdout.splitlines() if "," in line.split("  ")[0]]
    assert labels == [
        "AsyncSqliteSaver, sequential",
        "SqliteCheckpointer, sequential",
        "AsyncSqliteSaver, 2 concurrent",
        "SqliteCheckpointer, 2 concurrent",
    ]
