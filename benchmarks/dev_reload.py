"""How long `aegra dev` makes a developer wait: from the command to the first answer, and from saving a file to
the restarted server's first answer.

    .venv/bin/python benchmarks/dev_reload.py [--template chatbot] [--saves 5] [--compare]

It creates a project with `aegra init` in a temporary folder, starts `aegra dev` there (the `aegra` script next
to this Python, as a user runs it), waits for GET /ok, then appends a comment to the graph's file `--saves`
times, each time measuring until the next server process has started (by aegra dev's log) and answers /ok.
`--compare` does the same with uvicorn's own reloader (a fresh "spawn" process per restart, as before
aegra_cli.reloader) for the difference.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from throughput import _free_port

# `aegra dev` with aegra_cli.reloader switched off: uvicorn's reloader, each server process spawned afresh.
SPAWNING_AEGRA = "import aegra_cli.reloader as r; r.FORKS = False; from aegra_cli.app import main; main()"


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/ok", timeout=0.5).status_code == 200
    except httpx.TransportError:
        return False


def _started(log: Path) -> int:
    """How many server processes have finished starting, by aegra dev's log."""
    return log.read_text(errors="replace").count("Application startup complete")


def _until(condition, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise SystemExit(f"gave up after {timeout} s")
        time.sleep(0.01)


def measure(project: Path, saves: int, spawn: bool) -> tuple[float, list[float]]:
    port = _free_port()
    script = Path(sys.executable).with_name("aegra")
    command = [sys.executable, "-c", SPAWNING_AEGRA] if spawn else [str(script) if script.exists() else "aegra"]
    log = project.parent / f"aegra-dev-{'spawn' if spawn else 'fork'}.log"  # goes with the temporary folder
    started = time.perf_counter()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "dev", "--port", str(port)], cwd=project, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    graph = next(project.glob("src/*/graph.py"))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
            _until(lambda: _answers(client), 120)
            first = time.perf_counter() - started
            restarts = []
            for i in range(saves):
                time.sleep(1.0)  # the reloader settles
                saved = time.perf_counter()
                with graph.open("a") as file:
                    file.write(f"# save {i}\n")
                _until(lambda: _started(log) > i + 1, 60)  # the server process after this save
                _until(lambda: _answers(client), 60)
                restarts.append(time.perf_counter() - saved)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    return first, restarts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--template", default="chatbot")
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--compare", action="store_true", help="also measure with uvicorn's own reloader")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aegra-dev-bench-") as folder:
        project = Path(folder) / "bench-agent"
        subprocess.run(
            [sys.executable, "-m", "aegra_cli", "init", str(project), "-t", args.template],
            check=True, stdout=subprocess.DEVNULL,
        )
        print(f"{'reloader':<28}{'first /ok s':>12}{'save to /ok s (median, max)':>32}")
        for label, spawn in [("aegra (forked, warm)", False)] + ([("uvicorn (spawned)", True)] if args.compare else []):
            first, restarts = measure(project, args.saves, spawn)
            print(f"{label:<28}{first:>12.2f}{statistics.median(restarts):>20.2f}{max(restarts):>12.2f}")


if __name__ == "__main__":
    main()
