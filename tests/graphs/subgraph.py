"""subgraph: parent START -> child -> after -> END, where `child` is a compiled subgraph
START -> inner_a -> inner_b -> END. `trail` records which nodes ran; `value` is transformed.
"""

import operator
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class TrailState(TypedDict, total=False):
    trail: Annotated[list[str], operator.add]
    value: int


def inner_a(state: TrailState) -> dict[str, Any]:
    return {"trail": ["inner_a"], "value": int(state.get("value") or 0) + 1}


def inner_b(state: TrailState) -> dict[str, Any]:
    return {"trail": ["inner_b"], "value": int(state.get("value") or 0) * 10}


def after(state: TrailState) -> dict[str, Any]:
    return {"trail": ["after"]}


inner = StateGraph(TrailState)
inner.add_node("inner_a", inner_a)
inner.add_node("inner_b", inner_b)
inner.add_edge(START, "inner_a")
inner.add_edge("inner_a", "inner_b")
inner.add_edge("inner_b", END)
child = inner.compile()

outer = StateGraph(TrailState)
outer.add_node("child", child)
outer.add_node("after", after)
outer.add_edge(START, "child")
outer.add_edge("child", "after")
outer.add_edge("after", END)
graph = outer.compile()
