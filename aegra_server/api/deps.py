"""Typed dependencies: handlers ask for what they need by type."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from aegra_server.services import Services


async def _services(request: Request) -> Services:
    # async on purpose: FastAPI runs a sync dependency in a worker thread, a needless hop per request.
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(_services)]
