"""leaky: a node that fails the way a database client does, with a connection URL (and its password) in the
message. Clients may see the error, never the password."""

from typing import Any

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

SECRET = "hunter2-secret"


class LeakyState(TypedDict, total=False):
    done: bool


def connect(state: LeakyState) -> dict[str, Any]:
    raise ConnectionError(f"could not connect to postgresql://aegra:{SECRET}@db.internal:5432/aegra")


builder = StateGraph(LeakyState)
builder.add_node("connect", connect)
builder.add_edge(START, "connect")
builder.add_edge("connect", END)
graph = builder.compile()
