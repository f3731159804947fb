"""weather: START -> agent -> END; `agent` logs, asks a fake chat model, and calls the `forecast` tool.

For the observability tests: every step leaves a log line (one of them with a secret in it, which must be
redacted), a model call with token usage and a tool call, so spans, logs and metrics all have something to
show. A message containing "fail" makes the node raise. `slow_graph` sleeps for the `seconds` it is given, so
runs queue up behind it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from typing_extensions import TypedDict

log = logging.getLogger("tests.weather")

LEAKY_KEY = "sk-test-0123456789abcdefghij"


@tool
def forecast(city: str) -> str:
    """Tomorrow's weather for a city."""
    log.info("forecasting for %s", city)
    return f"sunny in {city}"


async def agent(state: MessagesState) -> dict[str, Any]:
    question = state["messages"][-1].content
    log.info("agent asked %r with api_key=%s", question, LEAKY_KEY)
    if "fail" in question:
        raise RuntimeError("the weather service is down")
    weather = await forecast.ainvoke({"city": "Paris"})
    reply = AIMessage(
        content=f"Tomorrow: {weather}",
        usage_metadata={"input_tokens": 11, "output_tokens": 7, "total_tokens": 18},
    )
    model = GenericFakeChatModel(messages=iter([reply]))
    return {"messages": [await model.ainvoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("agent", agent)
builder.add_edge(START, "agent")
builder.add_edge("agent", END)
graph = builder.compile()


class SlowState(TypedDict, total=False):
    seconds: float


async def wait(state: SlowState) -> dict[str, Any]:
    await asyncio.sleep(state.get("seconds", 0))
    return {}


slow_builder = StateGraph(SlowState)
slow_builder.add_node("wait", wait)
slow_builder.add_edge(START, "wait")
slow_builder.add_edge("wait", END)
slow_graph = slow_builder.compile()
