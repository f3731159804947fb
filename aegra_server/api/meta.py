"""Probes and server information."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter

from aegra_server.api.deps import ServicesDep
from aegra_server.api.http import JSONResponse
from aegra_server.observability.probes import check_components
from aegra_server.services import Services

router = APIRouter(tags=["meta"])


@functools.cache  # reading a distribution's metadata costs more than the rest of the request
def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


@router.get("/")
async def root() -> JSONResponse:
    return JSONResponse({"ok": True})


@router.get("/ok")
async def ok() -> JSONResponse:
    """Liveness: the process answers. Touches no database."""
    return JSONResponse({"ok": True})


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
            "version": _version("aegra"),
            "langgraph_py_version": _version("langgraph"),
            "flags": {"assistants": True, "crons": True, "langsmith": False},
            "host": {"kind": "aegra"},
        }
    )
