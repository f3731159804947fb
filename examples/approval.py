"""Human in the loop: drafts an answer, pauses with `interrupt()` for approval, then publishes or discards.

Resume with `Command(resume={"approved": true})` (SDK: `command={"resume": {"approved": True}}`).
"""

from typing import Any

from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt


class State(MessagesState, total=False):
    draft: str
    decision: Any


def draft(state: State) -> dict:
    request = state["messages"][-1].content if state["messages"] else "nothing"
    return {"draft": f"Draft answer to: {request}"}


def review(state: State) -> dict:
    return {"decision": interrupt({"question": "Publish this draft?", "draft": state["draft"]})}


def publish(state: State) -> dict:
    decision = state.get("decision")
    approved = decision.get("approved") if isinstance(decision, dict) else bool(decision)
    text = state["draft"] if approved else "The draft was discarded."
    return {"messages": [AIMessage(content=text)]}


builder = StateGraph(State)
builder.add_node("draft", draft)
builder.add_node("review", review)
builder.add_node("publish", publish)
builder.add_edge(START, "draft")
builder.add_edge("draft", "review")
builder.add_edge("review", "publish")
builder.add_edge("publish", END)
graph = builder.compile()
