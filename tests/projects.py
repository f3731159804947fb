"""What tests need to make a small real Aegra project in a temporary folder."""

from __future__ import annotations

# A one-node graph that needs nothing but langgraph: `count` goes up by one.
COUNTER_GRAPH = '''\
from typing_extensions import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    count: int


def step(state: State) -> dict:
    return {"count": state["count"] + 1}


builder = StateGraph(State)
builder.add_node("step", step)
builder.add_edge(START, "step")
builder.add_edge("step", END)
graph = builder.compile()
'''

# Variables that steer config discovery, the database and Docker: a developer's own values must not leak into
# tests that make their own projects.
STEERING_ENV = (
    "AEGRA_CONFIG",
    "DATABASE_URL",
    "AEGRA_ENV_FILE",
    "AEGRA_DEV",
    "AEGRA_POSTGRES_IMAGE",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
)
