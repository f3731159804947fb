"""Probes and server information."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Query

from aegra_server.api.deps import ServicesDep
from aegra_server.api.http import JSONResponse
from aegra_server.observability.probes import COMPONENTS, check_components
from aegra_server.services import Services

router = APIRouter(tags=["meta"])


@functools.cache  # reading a distribution's metadata costs more than the rest of the request
def installed_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


@router.get("/")
async def root() -> JSONResponse:
    return JSONResponse({"ok": True})


@router.get("/ok")
async def ok(
    services: ServicesDep,
    check_db: int = Query(0, ge=0, le=1, description="1: also check that the database, checkpointer and store answer"),
) -> JSONResponse:
    """Liveness, answered as langgraph-api answers it: the process answers, and touches no database. With
    `check_db=1` each storage part must answer too, else a 500 that names it (for probes that should fail when
    the database is gone)."""
    if not check_db:
        return JSONResponse({"ok": True, "services": dict.fromkeys(COMPONENTS, "skipped")})
    checks = await check_components(services)
    health = {part: "healthy" if outcome == "ok" else "unhealthy" for part, outcome in checks.items()}
    failed = "unhealthy" in health.values()
    return JSONResponse({"ok": not failed, "services": health}, status_code=500 if failed else 200)


async def _readiness(services: Services) -> JSONResponse:
    checks = await check_components(services)
    failing = [part for part, outcome in checks.items() if outcome != "ok"]
    if failing:
        return JSONResponse({"status": "unhealthy", "failing": failing, "checks": checks}, status_code=503)
    return JSONResponse({"status": "healthy", "checks": checks})


@router.get("/health")
async def health(services: ServicesDep) -> JSONResponse:
    """The database, the checkpointer and the store each answer; a 503 names the part that does not."""
    return await _readiness(services)


@router.get("/ready")
async def ready(services: ServicesDep) -> JSONResponse:
    """Readiness probe for orchestrators (same checks as /health): route traffic here only while it is 200."""
    return await _readiness(services)


@router.get("/info")
async def info() -> JSONResponse:
    return JSONResponse(
        {
            "version": installed_version("aegra"),
            "langgraph_py_version": installed_version("langgraph"),
            "flags": {"assistants": True, "crons": True, "langsmith": False},
            "host": {"kind": "aegra"},
        }
    )
