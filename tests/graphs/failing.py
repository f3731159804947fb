"""failing: START -> ok -> boom -> END; `boom` raises ValueError("intentional failure in node boom")."""

from typing import Any

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class FailingState(TypedDict, total=False):
    reached: str


def ok(state: FailingState) -> dict[str, Any]:
    return {"reached": "ok"}


def boom(state: FailingState) -> dict[str, Any]:
    raise ValueError("intentional failure in node boom")


builder = StateGraph(FailingState)
builder.add_node("ok", ok)
builder.add_node("boom", boom)
builder.add_edge(START, "ok")
builder.add_edge("ok", "boom")
builder.add_edge("boom", END)
graph = builder.compile()
