"""Prometheus metrics, served at /metrics when ENABLE_METRICS is set (the route does not exist otherwise).

Each app has its own registry, so several apps in one process (tests) never collide. Counters and histograms
are updated as requests and runs happen; the queue gauges are read from the database at scrape time, so they
are right across all server processes sharing it.

The workers of `aegra serve --workers N` share one port, so a scrape reaches whichever worker takes it. They run
with PROMETHEUS_MULTIPROC_DIR set (the CLI makes the folder): each worker's values live in files there and every
scrape answers for all of them (prometheus_client's multiprocess mode). Series that describe one process
(process_*, python_gc_*) are left out then; the pool gauges carry a `pid` label, as of that worker's last scrape.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

from aegra_server.storage.database import as_utc, utcnow

if TYPE_CHECKING:
    from aegra_server.services import Services

# Runs last from milliseconds (a tool-less echo) to many minutes (agents with several model calls).
RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.shared = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))  # workers: see the module's docstring
        if not self.shared:
            # The standard process_* (CPU, memory, open files), python_gc_* and python_info series.
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self.requests = Counter(
            "aegra_http_requests", "HTTP requests by route template and status.", ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "aegra_http_request_duration_seconds", "HTTP request latency (to the end of the body; streams included).",
            ["method", "route"], registry=r,
        )
        self.runs = Counter("aegra_runs", "Runs finished by this process, by final status.", ["status"], registry=r)
        self.run_seconds = Histogram(
            "aegra_run_duration_seconds", "Run duration from start to final status.", ["graph_id", "status"],
            buckets=RUN_BUCKETS, registry=r,
        )
        # multiprocess_mode: how the workers' values add up (see the module's docstring; ignored otherwise).
        self.runs_executing = Gauge(
            "aegra_runs_executing", "Runs this server is executing now.", registry=r, multiprocess_mode="livesum"
        )
        self.runs_pending = Gauge(
            "aegra_runs_pending", "Runs waiting to start (queue depth, all processes).", registry=r,
            multiprocess_mode="mostrecent",
        )
        self.oldest_pending = Gauge(
            "aegra_runs_oldest_pending_age_seconds", "Age of the oldest pending run; 0 when none waits.", registry=r,
            multiprocess_mode="mostrecent",
        )
        self.sse_streams = Gauge(
            "aegra_sse_streams_active", "Server-sent event streams open now.", registry=r, multiprocess_mode="livesum"
        )
        self.pool_checked_out = Gauge(
            "aegra_db_pool_checked_out", "Database connections in use, per pool.", ["pool"], registry=r,
            multiprocess_mode="liveall",
        )
        self.pool_size = Gauge(
            "aegra_db_pool_size", "Configured size of each database connection pool.", ["pool"], registry=r,
            multiprocess_mode="liveall",
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def observe_run(self, graph_id: str, status: str, seconds: float) -> None:
        self.runs.labels(status).inc()
        self.run_seconds.labels(graph_id, status).observe(seconds)

    async def refresh(self, services: Services) -> None:
        """The gauges that describe shared state, read now."""
        pending, oldest = await services.repos.runs.queue_stats()
        self.runs_pending.set(pending)
        self.oldest_pending.set(max((utcnow() - as_utc(oldest)).total_seconds(), 0.0) if oldest else 0.0)
        for name, (checked_out, size) in pool_usage(services).items():
            self.pool_checked_out.labels(name).set(checked_out)
            self.pool_size.labels(name).set(size)

    def render(self) -> bytes:
        if not self.shared:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        multiprocess.MultiProcessCollector(every_worker)
        return generate_latest(every_worker)

    def close(self) -> None:
        """A worker that stops takes its live gauges (runs executing, open streams, pools) out of the sums."""
        if self.shared:
            multiprocess.mark_process_dead(os.getpid())


def pool_usage(services: Services) -> dict[str, tuple[int, int]]:
    """Our tables' SQLAlchemy pools, plus the psycopg pools LangGraph's checkpointer and store use on Postgres."""
    usage = services.repos.db.pool_usage()
    for name, holder in (("checkpointer", services.checkpointer), ("store", services.store)):
        pool: Any = getattr(holder, "conn", None)
        if hasattr(pool, "get_stats") and hasattr(pool, "max_size"):
            stats = pool.get_stats()
            usage[name] = (stats.get("pool_size", 0) - stats.get("pool_available", 0), pool.max_size)
    return usage


router = APIRouter(tags=["meta"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition format."""
    collected: Metrics = request.app.state.observability.metrics
    await collected.refresh(request.app.state.services)
    return Response(collected.render(), media_type=CONTENT_TYPE_LATEST)
