"""custom: emits custom stream events with get_stream_writer().

Writes {"progress": i, "of": n} for i = 1..n (n = input `n`, default 3), then returns
{"result": "done <n>"}.
"""

from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class ProgressState(TypedDict, total=False):
    n: int
    result: str


def produce(state: ProgressState) -> dict[str, Any]:
    write = get_stream_writer()
    total = int(state.get("n") or 3)
    for i in range(1, total + 1):
        write({"progress": i, "of": total})
    return {"result": f"done {total}"}


builder = StateGraph(ProgressState)
builder.add_node("produce", produce)
builder.add_edge(START, "produce")
builder.add_edge("produce", END)
graph = builder.compile()
