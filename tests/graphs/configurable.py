"""configurable: output depends on the assistant's config or the run's context.

greeting = config["configurable"]["greeting"], else runtime context["greeting"], else "Hello".
Input `name` (default "world"); output {"greeting": "<greeting>, <name>!"}. A server may mirror
configurable and context into each other, so the graph does not say where the value came from.

context_graph ("context_only"): the same, reading only `runtime.context`, whose schema is a dataclass: a context
key the schema lacks would fail its construction, so the server must pass only the keys it names.
"""

from dataclasses import dataclass
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


def _one_node(node, context_schema):
    builder = StateGraph(GreetingState, context_schema=context_schema)
    builder.add_node("greet", node)
    builder.add_edge(START, "greet")
    builder.add_edge("greet", END)
    return builder.compile()


graph = _one_node(greet, GreetingContext)


@dataclass
class Greeting:
    greeting: str = "Hello"


def greet_from_context(state: GreetingState, runtime: Runtime[Greeting]) -> dict[str, Any]:
    return {"greeting": f"{runtime.context.greeting}, {state.get('name', 'world')}!"}


context_graph = _one_node(greet_from_context, Greeting)
