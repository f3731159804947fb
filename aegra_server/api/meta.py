"""Probes and server information."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from sqlalchemy import text

from aegra_server.api.deps import ServicesDep
from aegra_server.api.http import JSONResponse

router = APIRouter(tags=["meta"])


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


@router.get("/health")
async def health(services: ServicesDep) -> JSONResponse:
    """Readiness: the database answers."""
    try:
        await services.repos.db.read(lambda conn: conn.execute(text("SELECT 1")))
    except Exception:
        return JSONResponse({"status": "unhealthy", "failing": ["database"]}, status_code=503)
    return JSONResponse({"status": "healthy"})


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
