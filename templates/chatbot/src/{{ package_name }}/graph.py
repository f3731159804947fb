"""The chatbot: one node that sends the conversation to the chat model and appends its reply.

Aegra keeps each thread's messages in its checkpointer, so a conversation continues where it stopped.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import SystemMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from .model import make_model

SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly and plainly."


def build_graph(model: BaseChatModel, checkpointer: Any = None):
    """The graph around `model`. Tests pass the fake model; the server serves `graph` below."""

    def chat(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke([SystemMessage(SYSTEM_PROMPT), *state["messages"]])]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    builder.add_edge("chat", END)
    return builder.compile(checkpointer=checkpointer)


graph = build_graph(make_model())
