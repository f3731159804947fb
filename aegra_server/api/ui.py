"""/ui: generative UI, as langgraph-api serves it to Agent Chat UI (the JS SDK's `client["~ui"]`).

`POST /ui/{graph_id}` (or an assistant's id) with `{"name": ...}` answers the HTML that loads that graph's bundle
(aegra_server/ui_bundles.py): a stylesheet link per CSS file, and per JS file a script whose onload renders the
named component into the shadow root the page substitutes for `{{shadowRootId}}`. `GET /ui/{graph_id}/{file}`
serves the bundle's files, without authentication (the page loads them by URL), as langgraph-api does.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel

from aegra_server import ui_bundles
from aegra_server.api.assistants import readable_by_id_or_graph
from aegra_server.api.deps import ServicesDep
from aegra_server.auth import AuthDep, RequestAuth
from aegra_server.services import Services
from aegra_server.storage.common import NotFound

router = APIRouter(tags=["ui"])
ASSETS_PREFIX = "/ui/"  # GETs under it are public (aegra_server/api/gate.py)


class ComponentRequest(BaseModel):
    name: str


def _attribute(value: str) -> str:
    return html.escape(value, quote=True)


async def _graph_of(services: Services, auth: RequestAuth, key: str) -> str:
    """The graph a `/ui/{key}` means: a graph id, or (as the JS SDK names it, `assistantId`) an assistant's id."""
    if key in services.registry:
        return key
    try:
        return (await readable_by_id_or_graph(services, auth, key))["graph_id"]
    except (NotFound, HTTPException):  # no such assistant: the key is taken as a graph id
        return key


@router.post("/ui/{graph_id}")
async def ui_component(
    graph_id: str, body: ComponentRequest, request: Request, services: ServicesDep, auth: AuthDep
) -> Response:
    graph_id = await _graph_of(services, auth, graph_id)
    bundle = ui_bundles.schemas(services.config).get(graph_id)
    if bundle is None:
        raise HTTPException(404, f"UI not found for graph '{graph_id}'")
    global_name = "__LGUI_" + re.sub(r"[^a-zA-Z0-9]", "_", graph_id)
    base = f"{request.scope.get('root_path', '')}/ui/{quote(graph_id, safe='')}"
    tags = []
    for asset in bundle.get("assets", []):
        url = _attribute(f"{base}/{quote(Path(asset).name, safe='')}")
        if asset.endswith(".css"):
            tags.append(f'<link rel="stylesheet" href="{url}" />')
        elif asset.endswith(".js"):
            render = f"{global_name}.render({_attribute(json.dumps(body.name))}, \"{{{{shadowRootId}}}}\")"
            tags.append(f"<script src=\"{url}\" onload='{render}'></script>")
    return Response("\n".join(dict.fromkeys(tags)), media_type="text/html")  # watch lists rebuilt files again


@router.get("/ui/{graph_id}/{file_name}")
async def ui_asset(graph_id: str, file_name: str, services: ServicesDep) -> FileResponse:
    try:
        folder = (ui_bundles.output_dir(services.config) / "public" / graph_id).resolve()
        path = (folder / file_name).resolve()
        found = path.parent == folder and path.is_file()
    except (ValueError, OSError):  # a NUL byte, a name longer than the file system takes: no such file either
        found = False
    if not found:
        raise HTTPException(404, f"no UI file {file_name!r} for graph {graph_id!r}")
    return FileResponse(path)
