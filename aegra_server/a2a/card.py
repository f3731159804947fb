"""An assistant's A2A agent card: its name, description and skill, where its agent answers, and what it takes."""

from __future__ import annotations

from typing import Any

DEFAULT_MODES = ["application/json", "text/plain"]


class CardError(ValueError):
    """An assistant whose metadata makes no card."""


def _media_types(assistant: dict[str, Any], key: str) -> list[str]:
    """`metadata.a2a.input_modes` / `output_modes` when the assistant sets them, else JSON and text."""
    settings = (assistant.get("metadata") or {}).get("a2a")
    modes = settings.get(key) if isinstance(settings, dict) else None
    if modes is None:
        return DEFAULT_MODES
    if not isinstance(modes, list) or not modes or not all(isinstance(m, str) and m.strip() for m in modes):
        raise CardError(f"assistant metadata.a2a.{key} must be a non-empty list of media types")
    return [m.strip() for m in modes]


def agent_card(base_url: str, assistant: dict[str, Any], version: str) -> dict[str, Any]:
    """The assistant's agent card, its agent at `base_url`/a2a/{id}, served by this `version` of Aegra."""
    url = f"{base_url.rstrip('/')}/a2a/{assistant['assistant_id']}"
    name = assistant["name"]
    description = assistant.get("description") or f"{name} assistant"
    inputs, outputs = _media_types(assistant, "input_modes"), _media_types(assistant, "output_modes")
    return {
        "name": name,
        "description": description,
        # 1.0 clients read the interfaces; 0.3 clients the url, transport and version beside them.
        "supportedInterfaces": [{"url": url, "protocolBinding": "JSONRPC", "protocolVersion": version}
                                for version in ("1.0", "0.3")],
        "url": url,
        "preferredTransport": "JSONRPC",
        "protocolVersion": "0.3.0",
        "version": version,
        "capabilities": {"streaming": True, "pushNotifications": False, "stateTransitionHistory": False},
        "defaultInputModes": inputs,
        "defaultOutputModes": outputs,
        "skills": [{"id": f"{assistant['assistant_id']}-main", "name": f"{name} Capabilities",
                    "description": description, "tags": ["assistant", "langgraph"], "examples": [],
                    "inputModes": inputs, "outputModes": outputs}],
    }
