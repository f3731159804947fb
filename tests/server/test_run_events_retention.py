"""Stored run events are deleted once their thread has been idle longer than AEGRA_RUN_EVENTS_RETENTION_SECONDS.

They are stored where processes share the database (here Postgres): every streamed chunk is a row, so kept forever
they would outgrow everything else."""

from __future__ import annotations

import asyncio

import pytest
from langgraph_sdk import get_client
from sqlalchemy import func, select

from aegra_server.settings import Settings
from aegra_server.storage.database import Database
from aegra_server.storage.tables import run_events
from aegra_server.storage.urls import parse_database_url
from helpers import eventually, human, new_thread, wait_status
from tests.postgres import fresh_database
from tests.server.conftest import HTTP_TIMEOUT, _ServerThread

pytestmark = pytest.mark.postgres

RETENTION_SECONDS = 1.0


async def test_events_of_a_thread_s_runs_are_deleted_once_it_was_idle_longer_than_the_retention(
    graphs_config, pg_server
):
    with fresh_database(pg_server, prefix="aegra_retention") as url:
        settings = Settings(
            AEGRA_CONFIG=graphs_config, DATABASE_URL=url,
            AEGRA_RUN_EVENTS_RETENTION_SECONDS=RETENTION_SECONDS, AEGRA_THREAD_SWEEP_SECONDS=0.2,
        )
        server = _ServerThread(settings)
        server.start()
        sdk = get_client(url=server.url, api_key=None, timeout=HTTP_TIMEOUT)
        db = Database(parse_database_url(url))

        async def stored(run_id: str) -> int:
            query = select(func.count()).select_from(run_events).where(run_events.c.run_id == run_id)
            return await db.read(lambda conn: conn.execute(query).scalar_one())

        try:
            ended_thread, running_thread = await new_thread(sdk), await new_thread(sdk)
            ended = await sdk.runs.create(ended_thread, "echo", input=human("hello"))
            await wait_status(sdk, ended_thread, ended["run_id"], "success")
            await eventually(lambda: stored(ended["run_id"]))  # stored as it streamed
            long = await sdk.runs.create(running_thread, "slow", input={"steps": 40, "delay": 0.1, "label": "l"})
            await wait_status(sdk, running_thread, long["run_id"], "running")

            await eventually(lambda: _none(stored(ended["run_id"])), timeout=10)
            assert (await sdk.runs.get(ended_thread, ended["run_id"]))["status"] == "success"  # the run stays
            assert (await sdk.threads.get_state(ended_thread))["values"]["messages"]  # and its thread's state
            # Its thread idle (unchanged) longer than the retention, but the run still running: its events stay.
            await asyncio.sleep(RETENTION_SECONDS + 0.5)
            assert (await sdk.runs.get(running_thread, long["run_id"]))["status"] == "running"
            assert await stored(long["run_id"]) > 0
            # Joining a run whose events are gone answers at once, with nothing to replay.
            joined = [part async for part in sdk.runs.join_stream(ended_thread, ended["run_id"])]
            assert [part.event for part in joined if part.event not in ("metadata", "end")] == []
        finally:
            await db.close()
            await sdk.http.client.aclose()
            server.stop()


async def _none(count: asyncio.Future) -> bool:
    return await count == 0
