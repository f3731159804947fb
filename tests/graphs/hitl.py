"""hitl: START -> prepare -> ask -> finish -> END, pausing in `ask` with interrupt().

prepare sets draft = "draft for <topic>"; ask interrupts with {"question": "approve?", "draft": draft}
and stores the resume value in `decision`; finish appends AIMessage("decision: <decision>").
"""

from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt
from typing_extensions import TypedDict


class ReviewState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    topic: str
    draft: str
    decision: Any


def prepare(state: ReviewState) -> dict[str, Any]:
    return {"draft": f"draft for {state.get('topic', 'nothing')}"}


def ask(state: ReviewState) -> dict[str, Any]:
    decision = interrupt({"question": "approve?", "draft": state.get("draft")})
    return {"decision": decision}


def finish(state: ReviewState) -> dict[str, Any]:
    return {"messages": [AIMessage(content=f"decision: {state.get('decision')}")]}


builder = StateGraph(ReviewState)
builder.add_node("prepare", prepare)
builder.add_node("ask", ask)
builder.add_node("finish", finish)
builder.add_edge(START, "prepare")
builder.add_edge("prepare", "ask")
builder.add_edge("ask", "finish")
builder.add_edge("finish", END)
graph = builder.compile()
