"""factory: a graph factory taking the run's config (exercises per-request graph construction).

`make_graph(config)` builds an echo-like graph whose reply prefix comes from
config["configurable"]["prefix"] (default "echo"), so a test can tell the factory saw the config.
Every call is recorded in CALLS.
"""

import operator
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

CALLS: list[dict[str, Any]] = []


class FactoryState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    turns: Annotated[int, operator.add]


def _last_text(messages: list[Any]) -> str:
    if not messages:
        return ""
    last = messages[-1]
    content = last.get("content") if isinstance(last, dict) else getattr(last, "content", "")
    return content if isinstance(content, str) else str(content)


def make_graph(config: RunnableConfig) -> StateGraph:
    CALLS.append(config)
    prefix = str(((config or {}).get("configurable") or {}).get("prefix", "echo"))

    def echo(state: FactoryState) -> dict[str, Any]:
        return {"messages": [AIMessage(content=f"{prefix}: {_last_text(state.get('messages') or [])}")]}

    def tally(state: FactoryState) -> dict[str, Any]:
        return {"turns": 1}

    builder = StateGraph(FactoryState)
    builder.add_node("echo", echo)
    builder.add_node("tally", tally)
    builder.add_edge(START, "echo")
    builder.add_edge("echo", "tally")
    builder.add_edge("tally", END)
    return builder  # uncompiled on purpose: the registry compiles what a factory returns
