"""Generative UI for real: aegra.json's `ui` components bundled by LangChain's bundler (@langchain/langgraph-ui,
installed by `npm ci --prefix tests/js`), served at /ui as Agent Chat UI loads them through the JS SDK.

Needs Node >= 20 and tests/js/node_modules; without either the tests are skipped (CI installs both).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from aegra_cli.app import app
from aegra_server import ui_bundles
from aegra_server.config import load_config
from aegra_server.errors import ConfigError
from tests.cli.test_commands import assert_clean_failure
from tests.projects import DevServer, clean_env, free_port

NODE_MODULES = Path(__file__).resolve().parents[1] / "js" / "node_modules"
GRAPH = Path(__file__).resolve().parents[1] / "graphs" / "echo.py"
COMPONENTS = 'const Weather = (props: {{ city?: string }}) => "{word} in " + (props.city ?? "nowhere");\n' \
             "export default {{ weather: Weather }};\n"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_MODULES / ".bin" / ui_bundles.BUNDLER_BIN).exists(),
    reason="needs Node and `npm ci --prefix tests/js` (the bundler @langchain/langgraph-ui)",
)


@pytest.fixture
def ui_project(tmp_path: Path) -> Path:
    """A project whose graph `agent` has components in ui.tsx, with node_modules as a JS project has them."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(GRAPH, project / "graph.py")
    (project / "ui.tsx").write_text(COMPONENTS.format(word="weather"))
    (project / "aegra.json").write_text(json.dumps({"graphs": {"agent": "./graph.py:graph"},
                                                    "ui": {"agent": "./ui.tsx"}}))
    (project / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
    return project


def _component(client: httpx.Client, key: str = "agent") -> httpx.Response:
    """What the JS SDK's `client["~ui"].getComponent(key, "weather")` sends (Agent Chat UI's LoadExternalComponent)."""
    return client.post(f"/ui/{key}", json={"name": "weather"}, headers={"Accept": "text/html"})


def test_build_writes_each_graphs_bundle_and_their_list(ui_project: Path) -> None:
    config = load_config(ui_project / "aegra.json")
    ui_bundles.build(config)
    assert ui_bundles.schemas(config) == {"agent": {"name": "agent", "assets": ["entrypoint.js"]}}
    bundle = (ui_bundles.output_dir(config) / "public" / "agent" / "entrypoint.js").read_text()
    assert "__LGUI_agent" in bundle and "weather in" in bundle


def test_a_component_that_does_not_compile_is_one_clear_error(ui_project: Path) -> None:
    (ui_project / "ui.tsx").write_text("export default {{{ broken")
    with pytest.raises(ConfigError, match="bundling the `ui` components failed") as failed:
        ui_bundles.build(load_config(ui_project / "aegra.json"))
    assert failed.value.hint == "fix the component file named in aegra.json's `ui`"


def test_serve_stops_with_one_line_when_the_components_do_not_bundle(ui_project: Path, monkeypatch) -> None:
    (ui_project / "ui.tsx").write_text("export default {{{ broken")
    monkeypatch.chdir(ui_project)
    result = CliRunner().invoke(app, ["serve", "--port", str(free_port())])
    assert_clean_failure(result, "bundling the `ui` components failed", "fix the component file")


def test_without_node_the_error_says_what_to_install(ui_project: Path, monkeypatch) -> None:
    (ui_project / "node_modules").unlink()
    monkeypatch.setenv("PATH", str(ui_project))  # no npx on it
    with pytest.raises(ConfigError, match="needs Node.js"):
        ui_bundles.build(load_config(ui_project / "aegra.json"))


@pytest.mark.timeout(180)
def test_dev_serves_the_components_and_rebundles_them_on_change(ui_project: Path) -> None:
    server = DevServer(ui_project, "--no-reload", env={**clean_env(), "LOG_LEVEL": "WARNING"})
    try:
        server.wait_ready()
        server.wait_until(lambda client: _component(client).status_code == 200, 60, "the first bundle")
        with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as client:
            html = _component(client).text
            assert html == ('<script src="/ui/agent/entrypoint.js" '
                            "onload='__LGUI_agent.render(&quot;weather&quot;, \"{{shadowRootId}}\")'></script>")
            assistant = client.post("/assistants/search", json={"graph_id": "agent"}).json()[0]
            assert _component(client, assistant["assistant_id"]).text == html  # the JS SDK sends assistant ids
            asset = client.get("/ui/agent/entrypoint.js")
            assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
            assert "weather in" in asset.text
            missing = _component(client, "nope")
            assert missing.status_code == 404 and missing.json() == {"detail": "UI not found for graph 'nope'"}
            assert client.get("/ui/agent/..%2Fschemas.json").status_code == 404
            assert client.get("/ui/agent/nothing.js").status_code == 404

        (ui_project / "ui.tsx").write_text(COMPONENTS.format(word="rain"))
        server.wait_until(lambda client: "rain in" in client.get("/ui/agent/entrypoint.js").text, 60,
                          "the component rebundled")
    finally:
        server.stop()
    assert server.process.returncode == 0, server.output()
