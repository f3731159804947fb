"""Server processes start at the same moment on one fresh database: the workers of `aegra serve --workers N` on a
SQLite file, or servers (and their workers) on one Postgres."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ROOT / "tests" / "graphs" / "aegra.json"

# One worker's start-up, from the moment given on: the services the app opens, a look at them, closed again.
WORKER = """
import asyncio, sys, time
from contextlib import AsyncExitStack
from aegra_server.services import open_services
from aegra_server.settings import settings_from_env

async def main():
    settings = settings_from_env()
    time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
    async with AsyncExitStack() as stack:
        services = await open_services(settings, stack)
        assistants = (await services.repos.assistants.search(limit=100)).items
        assert services.runs.bus.shared
        assert {a["graph_id"] for a in assistants} == set(services.registry.ids), assistants
    print("up")

asyncio.run(main())
"""


def test_workers_starting_together_on_a_fresh_database_all_come_up(database_url):
    """Each sets up the schema, ours and LangGraph's store tables (whose migrations read the version, then
    write it), and the default assistants; without taking turns two would write the same rows and one would fail
    to start (on Postgres: a duplicate default assistant)."""
    env = {
        **os.environ,
        "AEGRA_CONFIG": str(GRAPHS),
        "DATABASE_URL": database_url,
        "AEGRA_WORKERS": "3",
        "LOG_LEVEL": "WARNING",
    }
    start_at = str(time.time() + 4)  # after every interpreter has imported LangGraph
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, start_at], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for _ in range(3)
    ]
    outputs = [worker.communicate(timeout=60)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0], "\n".join(outputs)
    assert all(output.strip().endswith("up") for output in outputs), outputs
