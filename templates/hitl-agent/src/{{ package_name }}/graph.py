"""Human in the loop: the model drafts a reply, and a person approves it before it is sent.

`review` pauses the run with interrupt(), showing the draft. Resume the thread with
Command(resume=...) (the SDK: `command={"resume": ...}`):

    {"approved": True}                          send the draft as the reply
    {"approved": False, "feedback": "shorter"}  draft again with that feedback, then ask again
    {"approved": False}                         send nothing

A plain `true` / "yes" approves, `false` / "no" rejects, and any other text counts as feedback.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command, interrupt

from .model import make_model

SYSTEM_PROMPT = "You draft replies to the user's request. A person reviews each draft before it is sent."
WITHDRAWN = "(The reviewer did not approve a reply.)"


class State(MessagesState):
    draft: str


def parse_decision(decision: Any) -> tuple[bool, str]:
    """(approved, feedback) from whatever the reviewer resumed with."""
    if isinstance(decision, dict):
        return bool(decision.get("approved")), str(decision.get("feedback") or "")
    if isinstance(decision, str):
        answer = decision.strip()
        if answer.lower() in ("yes", "y", "ok", "approve", "approved", "true"):
            return True, ""
        if answer.lower() in ("", "no", "n", "reject", "false"):
            return False, ""
        return False, answer
    return bool(decision), ""


def build_graph(model: BaseChatModel, checkpointer: Any = None):
    """The graph around `model`. Tests pass the fake model; the server serves `graph` below."""

    def draft(state: State) -> dict[str, Any]:
        reply = model.invoke([SystemMessage(SYSTEM_PROMPT), *state["messages"]])
        return {"draft": reply.text}

    def review(state: State) -> Command[Literal["draft", "__end__"]]:
        decision = interrupt({"question": "Send this reply?", "draft": state["draft"]})
        approved, feedback = parse_decision(decision)
        if approved:
            return Command(goto=END, update={"messages": [AIMessage(state["draft"])]})
        if feedback:
            # The rejected draft and the feedback stay in the conversation, so the next draft can use both.
            revision = [AIMessage(state["draft"]), HumanMessage(f"Please revise: {feedback}")]
            return Command(goto="draft", update={"messages": revision})
        return Command(goto=END, update={"messages": [AIMessage(WITHDRAWN)]})

    builder = StateGraph(State)
    builder.add_node("draft", draft)
    builder.add_node("review", review)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    return builder.compile(checkpointer=checkpointer)


graph = build_graph(make_model())
