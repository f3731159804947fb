"""Owner isolation written the way LangGraph's custom-auth docs write it, for tests/graphs/aegra_auth.json.

Tokens are user names: `Authorization: Bearer alice` is alice. alice may delete assistants, bob may not (his
handler returns False: a 403). Every thread, assistant and cron gets `metadata.owner` on create, and every other
action is filtered to the caller's own; store namespaces are prefixed with the caller's identity.
"""

from typing import Any

from langgraph_sdk import Auth
from langgraph_sdk.auth import is_studio_user

auth = Auth()

USERS = {
    "alice": {"permissions": ["assistants:delete"], "org": "acme"},
    "bob": {"permissions": [], "org": "globex"},
}


@auth.authenticate
async def authenticate(authorization: str | None, headers: dict, path: str, method: str) -> Auth.types.MinimalUserDict:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Auth.exceptions.HTTPException(status_code=401, detail="Missing bearer token")
    token = authorization.split(" ", 1)[1]
    if token == "broken":
        raise RuntimeError("the token service is down: secret-diagnostic-xyz")
    if token not in USERS:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Invalid token")
    assert headers.get("authorization") == authorization.encode()
    return {"identity": token, "display_name": token.title(), **USERS[token]}


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, str]:
    """The docs' "single-owner resources" pattern: stamp on create (and update), filter everything else."""
    if is_studio_user(ctx.user):
        return {}
    metadata = value.setdefault("metadata", {})
    metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}


@auth.on.threads.create
async def create_thread(ctx: Auth.types.AuthContext, value: Auth.types.on.threads.create.value) -> dict[str, str]:
    if (value.get("metadata") or {}).get("forbidden"):
        raise Auth.exceptions.HTTPException(status_code=403, detail="forbidden threads are forbidden")
    value.setdefault("metadata", {})["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}


@auth.on.assistants.delete
async def delete_assistant(ctx: Auth.types.AuthContext, value: Auth.types.on.assistants.delete.value):
    if "assistants:delete" not in ctx.permissions:
        return False
    return {"owner": ctx.user.identity}


@auth.on.threads.search
async def search_threads(ctx: Auth.types.AuthContext, value: Auth.types.on.threads.search.value):
    # A search within a team lists the team's threads the caller is a member of ($contains on a list);
    # any other search lists the caller's own.
    if (value.get("metadata") or {}).get("team"):
        return {"members": {"$contains": ctx.user.identity}}
    return {"owner": {"$eq": ctx.user.identity}}


@auth.on.store
async def own_namespace(ctx: Auth.types.AuthContext, value: Auth.types.on.store.value) -> None:
    namespace = tuple(value["namespace"]) if value.get("namespace") else ()
    if not namespace or namespace[0] != ctx.user.identity:
        namespace = (ctx.user.identity, *namespace)
    value["namespace"] = namespace
