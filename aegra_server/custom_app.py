"""`http.app`: the project's own Starlette or FastAPI app, served beside the protocol.

- Its routes answer whatever the protocol's routes do not. The protocol's routes come first, so a custom route
  cannot shadow one by accident: a conflicting custom route is reported with a warning at start-up and never
  reached. Its handlers see their own app as `request.app`, and its exception handlers apply to its routes.
- Its middleware wraps the whole server, protocol routes included, as langgraph-api does; `http.middleware_order`
  `"auth_first"` puts authentication outside it instead of inside (the default, `"middleware_first"`).
- Its lifespan runs inside the server's: started after the server's services are open, stopped before they
  close. State it yields is merged into the request state.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import BaseRoute, Match, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from aegra_server.config import AegraConfig
from aegra_server.errors import ConfigError

log = logging.getLogger("aegra.custom_app")

_PARAM = re.compile(r"{([^}:]+)(:[^}]+)?}")


def load_custom_app(config: AegraConfig) -> Starlette | None:
    """The app `http.app` names, or None. ConfigError when it cannot be loaded or is not a Starlette app."""
    if config.http is None or not config.http.app:
        return None
    from aegra_server.graphs import load_object

    app = load_object(config, config.http.app, "http.app")
    if not isinstance(app, Starlette):
        raise ConfigError(
            f"http.app {config.http.app!r} is a {type(app).__name__}, not a Starlette or FastAPI app",
            "point it at an instance, e.g. `app = FastAPI()` in that module, then `./app.py:app`",
        )
    return app


class CustomRoutes(BaseRoute):
    """One route standing for every route of the custom app; it goes last in the server's router."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        handlers = {k: v for k, v in app.exception_handlers.items() if k not in (500, Exception)}
        self._handle = ExceptionMiddleware(app.router, handlers=handlers, debug=app.debug)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] not in ("http", "websocket"):
            return Match.NONE, {}
        best = Match.NONE
        for route in self.app.router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return Match.FULL, {}
            if match is Match.PARTIAL:
                best = Match.PARTIAL
        return best, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Its handlers see their own app (its state, its url_path_for), not the server's.
        await self._handle({**scope, "app": self.app, "router": self.app.router}, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any):
        return self.app.router.url_path_for(name, **path_params)


def _sample_path(path: str) -> str:
    return _PARAM.sub("x", path)


def warn_shadowed(custom: Starlette, protocol_routes: Sequence[BaseRoute]) -> list[str]:
    """Warn about each custom route a protocol route answers instead; returns the descriptions (for tests)."""
    shadowed = []
    for route in custom.router.routes:
        if isinstance(route, Route):
            kinds = [("http", method) for method in sorted(route.methods or {"GET"}) if method != "HEAD"]
        elif isinstance(route, WebSocketRoute):
            kinds = [("websocket", None)]
        else:
            continue
        for kind, method in kinds:
            scope: dict[str, Any] = {"type": kind, "path": _sample_path(route.path), "root_path": ""}
            if method:
                scope["method"] = method
            if any(p.matches(scope)[0] is Match.FULL for p in protocol_routes):
                what = f"{method or 'WEBSOCKET'} {route.path}"
                shadowed.append(what)
                log.warning("custom route %s is also a protocol route: the protocol's answers, the custom one never runs", what)
    return shadowed


@asynccontextmanager
async def custom_lifespan(app: Starlette) -> AsyncIterator[dict[str, Any] | None]:
    """The custom app's lifespan (its `lifespan=` or on_startup/on_shutdown handlers)."""
    async with app.router.lifespan_context(app) as state:
        yield dict(state) if state else None
