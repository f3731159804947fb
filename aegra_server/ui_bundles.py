"""Generative UI: the React components of aegra.json's `ui`, bundled for Agent Chat UI to load.

As `langgraph dev` does, the bundling is LangChain's own bundler, the npm package @langchain/langgraph-ui
(esbuild inside): `build` writes each graph's bundle to `<output>/public/<graph_id>/` and the list of its files
to `<output>/schemas.json`; `watch` does the same again on every change. The project's own copy
(`node_modules/.bin/langgraphjs-ui`) is used when it has one, else npx fetches the package. Bundles go to
`<project>/.aegra/ui`; the server serves them (aegra_server/api/ui.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from aegra_server.config import AegraConfig
from aegra_server.errors import ConfigError

BUNDLER_PACKAGE = "@langchain/langgraph-ui@1"
BUNDLER_BIN = "langgraphjs-ui"
# npx may first have to fetch the bundler; a bundle itself takes well under a second.
BUILD_TIMEOUT_SECONDS = 300


def output_dir(config: AegraConfig) -> Path:
    return config.root / ".aegra" / "ui"


def schemas(config: AegraConfig) -> dict[str, Any]:
    """Graph id → {"name", "assets": [file names]} as the last bundling wrote it; empty before any."""
    try:
        return json.loads((output_dir(config) / "schemas.json").read_text())
    except (OSError, ValueError):
        return {}


def bundler_command(config: AegraConfig) -> list[str]:
    """The bundler to run: the project's own copy, else npx's; ConfigError without Node."""
    local = config.root / "node_modules" / ".bin" / BUNDLER_BIN
    if local.exists():
        return [str(local)]
    npx = shutil.which("npx")
    if npx is None:
        raise ConfigError(
            "aegra.json has `ui`: bundling its components needs Node.js (npx was not found)",
            "install Node.js 20 or later, or remove `ui` from aegra.json",
        )
    return [npx, "-y", BUNDLER_PACKAGE]


def _env(config: AegraConfig) -> dict[str, str]:
    shared = config.ui_config.shared if config.ui_config else []
    return {**os.environ, "LANGGRAPH_UI": json.dumps(config.ui), "LANGGRAPH_UI_CONFIG": json.dumps({"shared": shared})}


def build(config: AegraConfig) -> None:
    """Bundle the components once (`aegra serve`); ConfigError with the bundler's last words when it fails."""
    try:
        done = subprocess.run([*bundler_command(config), "build", "-o", str(output_dir(config))], cwd=config.root,
                              env=_env(config), capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"bundling the `ui` components took over {BUILD_TIMEOUT_SECONDS} s",
                          "check that npm can reach its registry, or install @langchain/langgraph-ui in the project")
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise ConfigError(f"bundling the `ui` components failed: {said[-1] if said else done.returncode}",
                          "fix the component file named in aegra.json's `ui`")


def watch(config: AegraConfig) -> subprocess.Popen:
    """Bundle the components and again on every change, until the process is stopped (`aegra dev`)."""
    return subprocess.Popen([*bundler_command(config), "watch", "-o", str(output_dir(config))], cwd=config.root,
                            env=_env(config))
