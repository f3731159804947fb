"""The FastAPI application: `create_app(settings)` builds it; nothing happens at import time."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from types import FrameType

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from aegra_server.api import a2a, assistants, crons, mcp, meta, openapi, runs, store, thread_protocol, threads, ui
from aegra_server.api.gate import RequestGate
from aegra_server.api.http import JSONBodyMiddleware, JSONResponse, install_error_handlers
from aegra_server.auth import AuthSetup
from aegra_server.config import HttpConfig, load_config
from aegra_server.errors import AegraError
from aegra_server.custom_app import CustomRoutes, custom_lifespan, load_custom_app, warn_shadowed
from aegra_server.observability import Observability
from aegra_server.observability.logs import configure_logging
from aegra_server.observability.middleware import ObservabilityMiddleware
from aegra_server.services import open_services
from aegra_server.settings import Settings, apply_env_file, settings_from_env

# Browser clients (Agent Chat UI, Studio) must be able to read these.
EXPOSED_HEADERS = ["content-location", "location", "x-pagination-total", "x-pagination-next", "x-request-id"]

# The route groups `http.disable_<group>` switches off, as in langgraph.json, in registration order.
ROUTE_GROUPS = (
    ("meta", meta.router),
    ("assistants", assistants.router),
    ("threads", threads.router),
    ("threads", thread_protocol.router),
    ("runs", crons.router),
    ("runs", runs.router),
    ("store", store.router),
    ("mcp", mcp.router),
    ("a2a", a2a.router),
    ("ui", ui.router),
)
DOCS = {"docs_url": "/docs", "redoc_url": "/redoc", "openapi_url": "/openapi.json"}


# Collect young objects every this many allocations rather than Python's 700: a run allocates and frees a few
# hundred short-lived objects, and at 700 the collector ran every few runs (0.4 ms of CPU per run; 0.01 at this).
GC_YOUNG_THRESHOLD = 7000


def tune_garbage_collector() -> None:
    """Once started: what the process holds now (LangGraph, FastAPI, the graphs, ~200k objects) lives as long as
    the process, so it is frozen out of the collector's scans; a full collection otherwise walked it all
    (~100 ms, a pause for every request in flight). Collected first, so no garbage is frozen with it."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


@contextmanager
def _noticing_shutdown_signals(callback: Callable[[], None]) -> Iterator[None]:
    """Call `callback` in the event loop when SIGTERM or SIGINT arrives, then the handler that was there (uvicorn's).

    uvicorn waits for open requests before it shuts the app down; told at the signal, the runs' grace period
    starts with that wait instead of after it. Signals reach the main thread only (not a server in a test thread).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        if callable(previous[sig]):
            previous[sig](sig, frame)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)


def create_app(settings: Settings) -> FastAPI:
    """The server. Refuses (ConfigError) when `auth.path` or `http.app` cannot be loaded: it never serves
    without the auth it was configured with."""
    observability = Observability(settings.observability)
    config = load_config(settings.config_path)
    http = config.http or HttpConfig()
    auth = AuthSetup.from_config(config, dev_mode=settings.dev_mode)
    custom = load_custom_app(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict | None]:
        try:
            async with _serving(app) as state:
                yield state
        except AegraError as exc:
            app.state.startup_failure = exc  # told in one line (OneLineStartupFailure), not as a traceback
            raise

    @asynccontextmanager
    async def _serving(app: FastAPI) -> AsyncIterator[dict | None]:
        async with AsyncExitStack() as stack:
            # Started first and so stopped last: the runs' final spans are exported on the way out.
            observability.start()
            stack.push_async_callback(asyncio.to_thread, observability.shutdown)
            app.state.services = await open_services(settings, stack, observability.runs)
            app.state.services.runs.webhooks_enabled = not http.disable_webhooks
            app.state.services.runs.webhooks.deliver_relative_to(app)
            stack.enter_context(_noticing_shutdown_signals(app.state.services.runs.shutdown_requested))
            # The custom app starts once the services are open and stops before they close.
            state = await stack.enter_async_context(custom_lifespan(custom)) if custom is not None else None
            tune_garbage_collector()
            yield state

    app = FastAPI(
        title="Aegra",
        description="Self-hosted LangGraph Agent Protocol server",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        # `http.disable_meta` takes the docs with the probes, as langgraph-api does.
        **({k: None for k in DOCS} if http.disable_meta else DOCS),
    )
    public_paths = set() if http.disable_meta else {*DOCS.values(), "/docs/oauth2-redirect"}
    for group, router in ROUTE_GROUPS:
        if getattr(http, f"disable_{group}"):
            continue  # `http.disable_<group>`: those paths are 404s (or a custom route's)
        # Registered flat rather than with include_router, which resolves included routers anew on every
        # request in current FastAPI; the routes already carry their full paths.
        app.router.routes.extend(router.routes)
        if group == "meta":
            public_paths.update(route.path for route in router.routes)
    if observability.metrics is not None:
        from aegra_server.observability.metrics import router as metrics_router

        app.router.routes.extend(metrics_router.routes)
        public_paths.update(route.path for route in metrics_router.routes)
    protocol_routes = list(app.router.routes)
    custom_route = None
    if custom is not None:
        warn_shadowed(custom, protocol_routes)
        custom_route = CustomRoutes(custom)
        app.router.routes.append(custom_route)  # last: the protocol's routes always win
    app.state.observability = observability
    app.state.auth = auth
    install_error_handlers(app)
    openapi.install(app, public_paths)
    cors = http.cors
    # Added innermost first (each add_middleware wraps the ones before): JSON bodies, the custom app's
    # middleware when auth comes first, the gate (limits and authentication), the custom middleware by
    # default, CORS (so refusals carry CORS headers too), and observability outermost.
    app.add_middleware(JSONBodyMiddleware)
    app.add_middleware(OneLineStartupFailure, dev_mode=settings.dev_mode)
    auth_first = http.middleware_order == "auth_first"
    if custom is not None and auth_first:
        app.user_middleware[0:0] = custom.user_middleware
    app.add_middleware(
        RequestGate,
        auth=auth,
        protocol_routes=protocol_routes,
        public_paths=public_paths,
        # The generative UI's bundle files are loaded by URL from the page, as langgraph-api serves them.
        public_get_prefix=None if http.disable_ui else ui.ASSETS_PREFIX,
        custom_route=custom_route,
        custom_route_auth=http.enable_custom_route_auth,
        max_body_bytes=settings.max_body_bytes,
        max_json_depth=settings.max_json_depth,
    )
    if custom is not None and not auth_first:
        app.user_middleware[0:0] = custom.user_middleware
    app.add_middleware(
        CORSMiddleware,
        allow_origins=cors.allow_origins if cors else ["*"],
        allow_methods=cors.allow_methods if cors else ["*"],
        allow_headers=cors.allow_headers if cors else ["*"],
        allow_credentials=cors.allow_credentials if cors else False,
        allow_origin_regex=cors.allow_origin_regex if cors else None,
        expose_headers=sorted({*EXPOSED_HEADERS, *(cors.expose_headers if cors else [])}),
        max_age=cors.max_age if cors else 600,
    )
    # Added last, so outermost: every request gets an id and an access-log line, whatever answers it.
    app.add_middleware(ObservabilityMiddleware, observability=observability)
    return app


def told(exc: AegraError, dev_mode: bool) -> str:
    """A start-up failure the user can fix, as the CLI tells one: the problem, then the fix."""
    text = f"error: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else "")
    return text + ("\n(save the fix: the server restarts by itself)" if dev_mode else "")


class OneLineStartupFailure:
    """When a problem the user can fix (an AegraError) stops start-up, uvicorn logs it as told, not the
    traceback Starlette puts in `lifespan.startup.failed`: a dev reload after a typo in a graph prints two lines."""

    def __init__(self, app, dev_mode: bool) -> None:
        self.app = app
        self.dev_mode = dev_mode

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_told(message) -> None:
            failure = getattr(scope["app"].state, "startup_failure", None)
            if message["type"] == "lifespan.startup.failed" and failure is not None:
                message = {**message, "message": told(failure, self.dev_mode)}
            await send(message)

        await self.app(scope, receive, send_told)


def app_from_env() -> FastAPI:
    """uvicorn factory for `aegra dev` / `aegra serve`: settings come from the environment the CLI set.

    The project's `.env` is read here, in the server process, so that a reload picks up its edits.
    """
    try:
        env_file = os.environ.get("AEGRA_ENV_FILE")
        apply_env_file(Path(env_file) if env_file else None)
        settings = settings_from_env()
        observability = settings.observability
        configure_logging(observability.resolved_log_format(settings.dev_mode), observability.log_level)
        return create_app(settings)
    except AegraError as exc:
        # A reload that met a broken aegra.json or .env: told in one line; the reloader waits for the fix.
        print(told(exc, os.environ.get("AEGRA_DEV") == "1"), file=sys.stderr)
        raise SystemExit(1) from None
