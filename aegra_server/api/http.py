"""HTTP plumbing shared by every router: the JSON response class, error mapping, id checks, pagination."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from langgraph.store.base import InvalidNamespaceError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from aegra_server.auth import AuthFailure
from aegra_server.configurable import BOTH_GIVEN, both_given
from aegra_server.graphs import NotAnAssistant
from aegra_server.runs.webhook_policy import WebhookRefused
from aegra_server.serde import dumps
from aegra_server.storage.common import Conflict, NotFound, Page
from aegra_server.storage.connections import connection_lost, log_failure
from aegra_server.storage.filters import FilterError

log = logging.getLogger("aegra.http")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def validate_uuid(value: str, what: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        raise HTTPException(422, f"{what} must be a UUID, got {value!r}") from None
    return value


def refuse_configurable_and_context(config: dict[str, Any] | None, context: dict[str, Any] | None) -> None:
    """Assistants, runs and crons take one or the other (aegra_server/configurable.py), a 400 as langgraph-api."""
    if both_given(config, context):
        raise HTTPException(400, BOTH_GIVEN)


def paged(page: Page, items: list[Any] | None = None) -> JSONResponse:
    """A search result: the items as a bare array, the counts in X-Pagination-* headers."""
    headers = {"X-Pagination-Total": str(page.total)}
    if page.next_offset is not None:
        headers["X-Pagination-Next"] = str(page.next_offset)
    return JSONResponse(page.items if items is None else items, headers=headers)


def _detail(status: int, detail: Any) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (a path is often several routes, one per method). A path
    spelled out by a route (/threads/search) is that route's, not also a parameter's value (/threads/{id})."""
    matching = [
        route
        for route in request.app.router.routes
        if getattr(route, "methods", None)
        and getattr(route, "path_regex", None) is not None
        and route.path_regex.match(request.url.path)
    ]
    literal = [route for route in matching if route.path == request.url.path]
    return sorted({method for route in literal or matching for method in route.methods})


def install_error_handlers(app: FastAPI) -> None:
    """One error shape, `{"detail": ...}`, as langgraph-api sends; never exception text in a 500."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            # The router names only the one route it tried; a 405 must list all the path's methods.
            allowed = _allowed_methods(request)
            if allowed:
                exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
        return await http_exception_handler(request, exc)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _detail(404, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _detail(409, str(exc))

    @app.exception_handler(AuthFailure)
    async def _refused(_: Request, exc: AuthFailure) -> JSONResponse:
        # An authorization handler said no (403), or raised Auth.exceptions.HTTPException with its own status.
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers or None)

    @app.exception_handler(InvalidNamespaceError)
    async def _bad_namespace(_: Request, exc: InvalidNamespaceError) -> JSONResponse:
        # The store's own rules (a "langgraph" root label, NUL bytes), as langgraph-api answers them.
        return _detail(400, f"namespace: {exc}")

    @app.exception_handler(NotAnAssistant)
    async def _not_an_assistant(_: Request, exc: NotAnAssistant) -> JSONResponse:
        return _detail(422, str(exc))

    @app.exception_handler(FilterError)
    async def _bad_filter(_: Request, exc: FilterError) -> JSONResponse:
        return _detail(422, str(exc))

    @app.exception_handler(WebhookRefused)
    async def _bad_webhook(_: Request, exc: WebhookRefused) -> JSONResponse:
        # Shaped as a validation error of the body's field, like every other 422 about one field.
        return _detail(422, [{"loc": ["body", "webhook"], "msg": f"webhook refused: {exc}", "type": "value_error"}])

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in exc.errors()]
        return _detail(422, errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log_failure(log, logging.ERROR, f"unhandled error on {request.method} {request.url.path}", exc)
        if connection_lost(exc):  # a database restart or failover: nothing wrong with the request; it may come again
            response = _detail(503, "the database is unreachable; try again shortly")
            response.headers["Retry-After"] = "1"
            return response
        return _detail(500, "Internal server error")


class JSONBodyMiddleware:
    """Treat every request body as JSON, whatever its Content-Type.

    Studio posts JSON labelled text/plain; langgraph-api parses it regardless, so we must too. Custom routes
    (`http.app`, marked by the RequestGate) get their requests as sent.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("POST", "PUT", "PATCH", "DELETE")
            and scope.get("aegra.route") != "custom"
        ):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            headers.append((b"content-type", b"application/json"))
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)
