"""`config.configurable` and `context`: one set of values under two names.

LangGraph 0.6 introduced `context` as the successor of `config["configurable"]`, and langgraph-api keeps the two
the same so that graphs reading either see what a client set in either: an assistant stores both alike, a run
fills the one it was not given from the other, and giving both (with values) is refused. The graph receives
only the context keys its context schema names, so a mirrored `configurable` key the schema lacks never breaks
a dataclass or pydantic context.
"""

from __future__ import annotations

from typing import Any

BOTH_GIVEN = (
    "config.configurable and context cannot both be given: set context alone "
    "(LangGraph 0.6 introduced it as the successor of configurable)"
)


def both_given(config: dict[str, Any] | None, context: dict[str, Any] | None) -> bool:
    return bool((config or {}).get("configurable")) and bool(context)


def mirrored(
    config: dict[str, Any] | None, context: dict[str, Any] | None, *, context_wins: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, context), each filled from the other. When both hold values, `context_wins` says which one
    replaces the other (an assistant's PATCH: the one the patch gave)."""
    config, context = dict(config or {}), dict(context or {})
    configurable = config.get("configurable") or {}
    if context and (context_wins or not configurable):
        config["configurable"] = dict(context)
    elif configurable:
        context = dict(configurable)
    return config, context


_fields_by_schema: dict[Any, frozenset[str] | None] = {}


def for_graph(graph: Any, context: dict[str, Any] | None) -> dict[str, Any] | None:
    """The context a graph receives: only the keys its context schema names (all, when it names none)."""
    schema = getattr(graph, "context_schema", None)
    if not context or schema is None:
        return context
    if schema not in _fields_by_schema:  # a schema's JSON schema is costly to build: once per schema
        properties = (graph.get_context_jsonschema() or {}).get("properties")
        _fields_by_schema[schema] = frozenset(properties) if properties else None
    fields = _fields_by_schema[schema]
    return context if fields is None else {k: v for k, v in context.items() if k in fields}
