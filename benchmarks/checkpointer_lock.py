"""What AsyncSqliteSaver as shipped costs: the floor of throughput.py with LangGraph's saver and with the server's
(aegra_server.storage.checkpointer: the same saver without its operation lock, one trip to its connection's
thread per operation).

    .venv/bin/python benchmarks/checkpointer_lock.py [--runs 500] [--clients 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from functools import partial

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from throughput import _print, compare, floor

from aegra_server.storage.checkpointer import SqliteCheckpointer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subjects = {
            f"{saver.__name__}": partial(floor, f"sqlite:///{tmp}/{saver.__name__}.db", saver)
            for saver in (AsyncSqliteSaver, SqliteCheckpointer)
        }
        _print(asyncio.run(compare(subjects, args.runs, args.clients, args.rounds)))


if __name__ == "__main__":
    main()
