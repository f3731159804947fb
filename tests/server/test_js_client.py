"""A second real client: the official JS SDK (`@langchain/langgraph-sdk` from npm, what Agent Chat UI's useStream
is built on) drives the session's Aegra server from Node, through `node --test tests/js/`.

Needs Node >= 20 and `npm ci --prefix tests/js`; without either the test is skipped (CI installs both).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SDK_DIR = JS_DIR / "node_modules" / "@langchain" / "langgraph-sdk"
NODE_TIMEOUT = 240.0


@pytest.mark.timeout(NODE_TIMEOUT + 60)
def test_js_sdk_against_aegra(server_url: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the JS client test needs Node >= 20")
    if not SDK_DIR.is_dir():
        pytest.skip("tests/js/node_modules is missing: run `npm ci --prefix tests/js`")

    env = {**os.environ, "AEGRA_URL": server_url, "NO_COLOR": "1", "FORCE_COLOR": "0"}
    env.pop("NODE_OPTIONS", None)
    try:
        result = subprocess.run(
            [node, "--test", "--test-reporter=spec", "client.test.mjs"],
            cwd=JS_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"node --test did not finish within {NODE_TIMEOUT} s\n{out}", pytrace=False)
    if result.returncode != 0:
        pytest.fail(
            f"node --test failed (exit {result.returncode}) against {server_url}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}",
            pytrace=False,
        )
