"""slow: a node that loops `steps` times, sleeping `delay` seconds each time (cancel/join/multitask tests).

Input {"steps": N, "delay": seconds, "label": str}; config["configurable"]["delay"] overrides the
input delay. Each step is its own superstep (so a checkpoint is written per step) and appends
"<label>:<i>" to `log`.
"""

import asyncio
import operator
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class SlowState(TypedDict, total=False):
    steps: int
    delay: float
    label: str
    done: int
    log: Annotated[list[str], operator.add]


async def start(state: SlowState) -> dict[str, Any]:
    return {"done": 0}


async def step(state: SlowState, config: RunnableConfig) -> dict[str, Any]:
    configurable = (config or {}).get("configurable") or {}
    delay = float(configurable.get("delay", state.get("delay", 0.5)))
    await asyncio.sleep(delay)
    done = int(state.get("done") or 0) + 1
    return {"done": done, "log": [f"{state.get('label', 'run')}:{done}"]}


def again(state: SlowState) -> str:
    return "step" if int(state.get("done") or 0) < int(state.get("steps") or 1) else END


builder = StateGraph(SlowState)
builder.add_node("start", start)
builder.add_node("step", step)
builder.add_edge(START, "start")
builder.add_edge("start", "step")
builder.add_conditional_edges("step", again, ["step", END])
graph = builder.compile()
