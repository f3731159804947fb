"""configurable: output depends on the assistant's config or the run's context.

greeting = config["configurable"]["greeting"], else runtime context["greeting"], else "Hello".
Input `name` (default "world"); output {"greeting": "<greeting>, <name>!"}. A server may mirror
configurable and context into each other, so the graph does not say where the value came from.
"""

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


class GreetingState(TypedDict, total=False):
    name: str
    greeting: str


class GreetingContext(TypedDict, total=False):
    greeting: str


def greet(state: GreetingState, config: RunnableConfig, runtime: Runtime[GreetingContext]) -> dict[str, Any]:
    configurable = (config or {}).get("configurable") or {}
    context = runtime.context if isinstance(runtime.context, dict) else {}
    greeting = configurable.get("greeting") or context.get("greeting") or "Hello"
    return {"greeting": f"{greeting}, {state.get('name', 'world')}!"}


builder = StateGraph(GreetingState, context_schema=GreetingContext)
builder.add_node("greet", greet)
builder.add_edge(START, "greet")
builder.add_edge("greet", END)
graph = builder.compile()
