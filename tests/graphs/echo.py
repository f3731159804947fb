"""echo: START -> echo -> tally -> END, deterministic and key-free.

`echo` answers the last message with AIMessage("echo: <its text>"); `tally` adds 1 to `turns`
(operator.add reducer); `note` is a plain last-value key. Two nodes, so interrupt_before/after have
somewhere to stop.
"""

import operator
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class EchoState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    turns: Annotated[int, operator.add]
    note: str


def last_text(messages: list[Any]) -> str:
    if not messages:
        return ""
    last = messages[-1]
    content = last.get("content") if isinstance(last, dict) else getattr(last, "content", "")
    if isinstance(content, list):  # content blocks
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


def echo(state: EchoState) -> dict[str, Any]:
    return {"messages": [AIMessage(content=f"echo: {last_text(state.get('messages') or [])}")]}


def tally(state: EchoState) -> dict[str, Any]:
    return {"turns": 1}


def build() -> StateGraph:
    builder = StateGraph(EchoState)
    builder.add_node("echo", echo)
    builder.add_node("tally", tally)
    builder.add_edge(START, "echo")
    builder.add_edge("echo", "tally")
    builder.add_edge("tally", END)
    return builder


graph = build().compile()
