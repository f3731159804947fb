"""The benchmark's graph: one node, one integer of state. What is measured is the server, not the graph."""

import operator
from typing import Annotated

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    count: Annotated[int, operator.add]


def bump(state: State) -> dict:
    return {"count": 1}


builder = StateGraph(State)
builder.add_node("bump", bump)
builder.add_edge(START, "bump")
builder.add_edge("bump", END)
graph = builder.compile()
