"""A ReAct agent: the model either answers or asks for tools; the tools run and the model sees their results.

The loop (agent -> tools -> agent ...) ends when the model replies without calling a tool.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import SystemMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from .model import make_model
from .tools import TOOLS

SYSTEM_PROMPT = "You are a helpful assistant. Use the tools when they help, then answer briefly."


def build_graph(model: BaseChatModel, checkpointer: Any = None):
    """The graph around `model`. Tests pass the fake model; the server serves `graph` below."""
    model_with_tools = model.bind_tools(TOOLS)

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model_with_tools.invoke([SystemMessage(SYSTEM_PROMPT), *state["messages"]])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(TOOLS))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)  # to "tools" when it asked for one, else the end
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


graph = build_graph(make_model())
