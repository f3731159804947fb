"""whoami: one node that reports who the server says is running it.

It reads the user the two documented ways: `config["configurable"]["langgraph_auth_user"]` (with
`langgraph_auth_user_id` and `langgraph_auth_permissions`) and LangGraph's runtime (`runtime.server_info.user`).
Without auth the user is None. It also reports the configurable's `user_id` and `langgraph_request_id`, and the
run's attempt from its metadata.
"""

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


class WhoAmI(TypedDict, total=False):
    identity: str | None
    user_id: str | None
    permissions: list[str] | None
    org: str | None
    runtime_identity: str | None
    configurable_user_id: str | None
    request_id: str | None
    run_attempt: int | None


def whoami(state: WhoAmI, config: RunnableConfig, runtime: Runtime) -> dict[str, Any]:
    configurable = config.get("configurable") or {}
    user = configurable.get("langgraph_auth_user")
    server_user = runtime.server_info.user if runtime.server_info is not None else None
    return {
        "identity": user["identity"] if user is not None else None,
        "user_id": configurable.get("langgraph_auth_user_id"),
        "permissions": configurable.get("langgraph_auth_permissions"),
        "org": user.get("org") if user is not None else None,
        "runtime_identity": server_user.identity if server_user is not None else None,
        "configurable_user_id": configurable.get("user_id"),
        "request_id": configurable.get("langgraph_request_id"),
        "run_attempt": (config.get("metadata") or {}).get("run_attempt"),
    }


builder = StateGraph(WhoAmI)
builder.add_node("whoami", whoami)
builder.add_edge(START, "whoami")
builder.add_edge("whoami", END)
graph = builder.compile()
