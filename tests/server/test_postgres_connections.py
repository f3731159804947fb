"""How many connections a server process opens to Postgres: within AEGRA_POSTGRES_CONNECTIONS, or by default within
its share of the server's max_connections. Past that, `aegra serve --workers 4` on a stock Postgres (100
connections) answered requests under load with 503s: "sorry, too many clients already"."""

from __future__ import annotations

import asyncio
import socket

import psycopg
import pytest
from langgraph_sdk import get_client

from aegra_server.settings import Settings
from aegra_server.storage.connections import PostgresConnections, per_process_connections
from helpers import eventually, new_thread
from tests.postgres import fresh_database
from tests.server.conftest import HTTP_TIMEOUT, _ServerThread


@pytest.mark.postgres
async def test_a_server_under_load_stays_within_its_connections(graphs_config, pg_server):
    with fresh_database(pg_server, prefix="aegra_connections") as url:
        settings = Settings(AEGRA_CONFIG=graphs_config, DATABASE_URL=url, AEGRA_POSTGRES_CONNECTIONS=8)
        server = _ServerThread(settings)
        server.start()
        sdk = get_client(url=server.url, api_key=None, timeout=HTTP_TIMEOUT)
        counts: list[int] = []
        done = asyncio.Event()

        async def connections(conn) -> int:
            query = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return (await (await conn.execute(query)).fetchone())[0]

        async def count_connections() -> None:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                # The connections of the server's start (the setup lock's) have closed, but their backends may take
                # a moment to go on a busy machine.
                await eventually(lambda: _at_most(connections(conn), 8), timeout=10)
                started.set()
                while not done.is_set():
                    counts.append(await connections(conn))
                    await asyncio.sleep(0.02)

        async def one(i: int) -> None:
            thread_id = await new_thread(sdk)
            await sdk.store.put_item(["load", str(i)], "k", {"i": i})
            output = await sdk.runs.wait(thread_id, "slow", input={"steps": 4, "delay": 0.01, "label": str(i)})
            assert output["log"] == [f"{i}:{n}" for n in range(1, 5)], output
            await sdk.threads.search(metadata={"nobody": i})

        started = asyncio.Event()
        counter = asyncio.create_task(count_connections())
        try:
            await asyncio.wait_for(started.wait(), 15)
            await asyncio.gather(*(one(i) for i in range(48)))
        finally:
            done.set()
            await counter
            await sdk.http.client.aclose()
            server.stop()
        # One over, for a moment, was seen once in five full-suite runs on a busy machine (never alone): likely a
        # connection replaced while its old backend still exits. Without the budget it was 28.
        assert counts and max(counts) <= 8 + 1, max(counts)


def test_the_default_shares_the_servers_connections_among_the_workers() -> None:
    # Stock Postgres: 100 connections, 3 reserved for superusers; a few are left for psql, migrations, backups.
    assert per_process_connections(max_connections=100, reserved=3, workers=4) == 23
    assert per_process_connections(max_connections=100, reserved=3, workers=1) == 62  # no more than it ever used
    assert per_process_connections(max_connections=20, reserved=3, workers=4) == 6  # the least a process runs on


@pytest.mark.parametrize("total", [6, 7, 23, 62])
def test_the_pools_and_the_signal_connections_add_up_to_the_total(total: int) -> None:
    pools = PostgresConnections.within(total)
    assert pools.tables + pools.checkpointer + pools.store + PostgresConnections.BUS == total
    assert min(pools.tables, pools.checkpointer, pools.store) >= 1


async def test_a_server_starting_while_postgres_is_unreachable_says_so_in_one_line(graphs_config):
    """The server process connects before migrations do (for max_connections, then the setup lock), as after a dev
    reload or a worker's start: an unreachable Postgres is an error the user can fix, told as the CLI tells it."""
    from contextlib import AsyncExitStack

    from aegra_server.errors import DatabaseError
    from aegra_server.services import open_services

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # nothing listens there once closed
    url = f"postgresql://aegra:S3cret@127.0.0.1:{port}/aegra"
    for connections in (None, 8):  # reading the server's max_connections, or the setup lock's connection
        settings = Settings(AEGRA_CONFIG=graphs_config, DATABASE_URL=url, AEGRA_POSTGRES_CONNECTIONS=connections)
        with pytest.raises(DatabaseError) as excinfo:
            async with AsyncExitStack() as stack:
                await open_services(settings, stack)
        assert excinfo.value.message.startswith("Cannot connect to the database at postgresql://aegra:***@")
        assert "S3cret" not in excinfo.value.message and "aegra up" in excinfo.value.hint


async def _at_most(count, most: int) -> bool:
    return await count <= most
