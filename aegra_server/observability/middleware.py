"""Per request: the X-Request-ID, one access-log line, and (when on) the request's span and metrics.

Pure ASGI rather than BaseHTTPMiddleware, so streamed responses pass through untouched and the duration is
measured to the end of the body. It is the outermost middleware, so CORS preflights and requests that
other middleware rejects are logged and counted too.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aegra_server.observability import context

if TYPE_CHECKING:
    from aegra_server.observability import Observability

access_log = logging.getLogger("aegra.access")

UNMATCHED_ROUTE = "unmatched"
_SSE = b"text/event-stream"


def route_template(scope: Scope) -> str:
    """The path template that served the request (`/threads/{thread_id}/runs`): a label of bounded
    cardinality. Middleware that copies the scope hides the router's note of it, so match again then."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return route.path
    routes = getattr(getattr(scope.get("app"), "router", None), "routes", ())
    return _match(routes, scope) or UNMATCHED_ROUTE


def _match(routes, scope: Scope) -> str | None:
    partial = None
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match is Match.NONE:
            continue
        path = getattr(candidate, "path", None)
        if path is None:  # one route standing for another app's routes (the custom app): look inside
            path = _match(getattr(getattr(getattr(candidate, "app", None), "router", None), "routes", ()), scope)
        if match is Match.FULL:
            return path
        partial = partial or path  # right path, other method: a 405
    return partial


def _error_handler(scope: Scope):
    """The app's handler for unexpected exceptions, as an async callable; None if it has none."""
    handlers = getattr(scope.get("app"), "exception_handlers", {})
    handler = handlers.get(Exception) or handlers.get(500)
    if handler is None or inspect.iscoroutinefunction(handler):
        return handler

    async def in_thread(request: Request, exc: Exception):
        return await run_in_threadpool(handler, request, exc)

    return in_thread


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, observability: Observability) -> None:
        self.app = app
        self.observability = observability
        self.exclude = observability.settings.exclude_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracing, metrics = self.observability.tracing, self.observability.metrics
        request_id = context.accept_request_id(_header(scope, b"x-request-id"))
        request_token = context.request_id.set(request_id)
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 500, "answered": False, "stream": False}
        traced = tracing.start_request(scope, request_id) if tracing is not None else None

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state.update(status=message["status"], answered=True)
                headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
                if metrics is not None and any(k == b"content-type" and v.startswith(_SSE) for k, v in headers):
                    state["stream"] = True
                    metrics.sse_streams.inc()
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                handler = _error_handler(scope)
                if state["answered"] or handler is None:
                    raise
                # Answered here with the app's own 500 handler rather than by Starlette's error middleware
                # (outside this one), so the 500 carries the request id and the error's log line does too.
                response = await handler(Request(scope), exc)
                await response(scope, receive, send_with_id)
        finally:
            if state["stream"]:
                metrics.sse_streams.dec()
            seconds = time.perf_counter() - started
            self._log(scope, state["status"], seconds)
            if metrics is not None or traced is not None:
                route = route_template(scope)
                if metrics is not None:
                    metrics.observe_request(scope["method"], route, state["status"], seconds)
                if traced is not None:
                    user = getattr(scope.get("user"), "identity", None)  # set by the auth gate, if any
                    tracing.end_request(traced, route, state["status"], user)
            context.request_id.reset(request_token)

    def _log(self, scope: Scope, status: int, seconds: float) -> None:
        path = scope["path"]
        if path in self.exclude or not access_log.isEnabledFor(logging.INFO):
            return
        method = scope["method"]
        duration_ms = round(seconds * 1000, 1)
        client = scope.get("client")
        access_log.info(
            "%s %s %d %.1f ms",
            method,
            path,
            status,
            duration_ms,
            extra={
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": duration_ms,
                "client": f"{client[0]}:{client[1]}" if client else None,
            },
        )
