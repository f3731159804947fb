"""Running things in a generated project the way a new user would: with this environment's Python, no API key,
and nowhere to send a request but localhost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from aegra_cli import scaffold
from tests.projects import DevServer

TEMPLATES = [template.name for template in scaffold.list_templates()]

# Keys would switch the generated graphs to a real model; the rest would point aegra at another project or database.
_REMOVED = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LANGSMITH_TRACING",
            "LANGCHAIN_TRACING_V2", "AEGRA_CONFIG", "AEGRA_ENV_FILE", "AEGRA_DEV", "DATABASE_URL")
# Any HTTP request that is not to this machine fails at once instead of reaching the network.
_OFFLINE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "ALL_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost", "PYTHONDONTWRITEBYTECODE": "1"}


def offline_env() -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items()
        if key not in _REMOVED and not key.startswith("POSTGRES_") and key.upper() not in _OFFLINE
    }
    return {**env, **_OFFLINE}


def run_in(project: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python <args>` in the project with this environment's Python, as `aegra` itself would be run."""
    return subprocess.run([sys.executable, *args], cwd=project, env=offline_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


def dev_server(project: Path, python: str = sys.executable) -> DevServer:
    """`aegra dev --no-reload` in a generated project, offline, on a free port, with `python`'s aegra."""
    return DevServer(project, "--no-reload", env=offline_env(), python=python)


async def converse(template: str, url: str) -> None:
    """The conversation each template's README promises, through langgraph-sdk, on the fake model."""
    client = get_client(url=url)
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    if template == "chatbot":
        result = await client.runs.wait(thread_id, "agent", input={"messages": [{"role": "user", "content": "Hello"}]})
        assert result["messages"][-1]["content"] == "[fake model] You said: Hello"
        result = await client.runs.wait(thread_id, "agent", input={"messages": [{"role": "user", "content": "Again"}]})
        assert [m["content"] for m in result["messages"]][-3:] == [
            "[fake model] You said: Hello", "Again", "[fake model] You said: Again"
        ]
    elif template == "react-agent":
        question = {"messages": [{"role": "user", "content": "What is 6 * 7?"}]}
        result = await client.runs.wait(thread_id, "agent", input=question)
        kinds = [message["type"] for message in result["messages"]]
        assert kinds == ["human", "ai", "tool", "ai"]
        assert result["messages"][-1]["content"] == "[fake model] calculator returned: 6 * 7 = 42"
    elif template == "hitl-agent":
        request = {"messages": [{"role": "user", "content": "Say hi to Ada"}]}
        paused = await client.runs.wait(thread_id, "agent", input=request)
        # What the README shows: the draft, from the run's own result.
        assert paused["__interrupt__"][0]["value"]["draft"] == "[fake model] You said: Say hi to Ada"
        state = await client.threads.get_state(thread_id)
        assert state["next"] == ["review"]
        [pause] = state["tasks"][0]["interrupts"]
        assert pause["value"] == {"question": "Send this reply?", "draft": "[fake model] You said: Say hi to Ada"}
        result = await client.runs.wait(thread_id, "agent", command={"resume": {"approved": True}})
        assert result["messages"][-1]["content"] == "[fake model] You said: Say hi to Ada"
        assert (await client.threads.get_state(thread_id))["next"] == []
    else:
        pytest.fail(f"no conversation written for the template {template!r}")
