"""HTTP plumbing shared by every router: the JSON response class, error mapping, id checks, pagination."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from aegra_server.serde import dumps
from aegra_server.storage.common import Conflict, NotFound, Page
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


def paged(page: Page, items: list[Any] | None = None) -> JSONResponse:
    """A search result: the items as a bare array, the counts in X-Pagination-* headers."""
    headers = {"X-Pagination-Total": str(page.total)}
    if page.next_offset is not None:
        headers["X-Pagination-Next"] = str(page.next_offset)
    return JSONResponse(page.items if items is None else items, headers=headers)


def _detail(status: int, detail: Any) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """One error shape, `{"detail": ...}`, as langgraph-api sends; never exception text in a 500."""

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _detail(404, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _detail(409, str(exc))

    @app.exception_handler(FilterError)
    async def _bad_filter(_: Request, exc: FilterError) -> JSONResponse:
        return _detail(422, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in exc.errors()]
        return _detail(422, errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _detail(500, "Internal server error")


class JSONBodyMiddleware:
    """Treat every request body as JSON, whatever its Content-Type.

    Studio posts JSON labelled text/plain; langgraph-api parses it regardless, so we must too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            headers.append((b"content-type", b"application/json"))
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)
