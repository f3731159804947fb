"""The route label of a request: its template, found again when a middleware copied the scope."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from aegra_server.custom_app import CustomRoutes
from aegra_server.observability.middleware import UNMATCHED_ROUTE, route_template


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/threads/{thread_id}")
    async def get_thread(thread_id: str) -> dict:
        return {}

    custom = Starlette(routes=[Route("/hello/{name}", lambda request: PlainTextResponse("hi"))])
    app.router.routes.append(CustomRoutes(custom))  # one route standing for all of another app's
    return app


def scope(app: FastAPI, method: str, path: str) -> dict:
    return {"type": "http", "method": method, "path": path, "root_path": "", "app": app, "headers": []}


def test_template_from_the_router_or_by_matching_again() -> None:
    app = make_app()
    assert route_template(scope(app, "GET", "/threads/abc")) == "/threads/{thread_id}"
    noted = {**scope(app, "GET", "/threads/abc"), "route": app.router.routes[-2]}
    assert route_template(noted) == "/threads/{thread_id}"


def test_wrong_method_keeps_the_template_and_unknown_paths_share_a_label() -> None:
    app = make_app()
    assert route_template(scope(app, "DELETE", "/threads/abc")) == "/threads/{thread_id}"
    assert route_template(scope(app, "GET", "/wp-admin/x.php")) == UNMATCHED_ROUTE


def test_a_route_standing_for_another_app_is_looked_into() -> None:
    app = make_app()
    assert route_template(scope(app, "GET", "/hello/ann")) == "/hello/{name}"
