"""The FastAPI application: `create_app(settings)` builds it; nothing happens at import time."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from aegra_server.api import assistants, crons, meta, runs, store, thread_protocol, threads
from aegra_server.api.http import JSONBodyMiddleware, JSONResponse, install_error_handlers
from aegra_server.config import load_config
from aegra_server.services import open_services
from aegra_server.settings import Settings, apply_env_file

# Browser clients (Agent Chat UI, Studio) must be able to read these.
EXPOSED_HEADERS = ["content-location", "location", "x-pagination-total", "x-pagination-next"]


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.services = await open_services(settings, stack)
            yield

    app = FastAPI(
        title="Aegra",
        description="Self-hosted LangGraph Agent Protocol server",
        lifespan=lifespan,
        default_response_class=JSONResponse,
    )
    for router in (
        meta.router, assistants.router, threads.router, thread_protocol.router, crons.router, runs.router, store.router
    ):
        # Registered flat rather than with include_router, which resolves included routers anew on every
        # request in current FastAPI; the routes already carry their full paths.
        app.router.routes.extend(router.routes)
    install_error_handlers(app)
    cors = load_config(settings.config_path).http
    cors = cors.cors if cors and cors.cors else None
    app.add_middleware(
        CORSMiddleware,
        allow_origins=cors.allow_origins if cors else ["*"],
        allow_methods=cors.allow_methods if cors else ["*"],
        allow_headers=cors.allow_headers if cors else ["*"],
        allow_credentials=cors.allow_credentials if cors else False,
        allow_origin_regex=cors.allow_origin_regex if cors else None,
        expose_headers=sorted({*EXPOSED_HEADERS, *(cors.expose_headers if cors else [])}),
    )
    app.add_middleware(JSONBodyMiddleware)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for `aegra dev` / `aegra serve`: settings come from the environment the CLI set.

    The project's `.env` is read here, in the server process, so that a reload picks up its edits.
    """
    env_file = os.environ.get("AEGRA_ENV_FILE")
    apply_env_file(Path(env_file) if env_file else None)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), format="%(levelname)s %(name)s: %(message)s")
    return create_app(Settings())
