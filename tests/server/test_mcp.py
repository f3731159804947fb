"""/mcp: the official MCP client (Streamable HTTP) lists the assistants as tools and calls them; the transport's
answers to everything else are langgraph-api's."""

from __future__ import annotations

import json
import uuid

import pytest
from langgraph_sdk import get_client
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

from aegra_server.api.mcp import tool_name
from tests.server.helpers import leftover_assistant

ACCEPT = {"Accept": "application/json, text/event-stream"}


async def _all_tools(session: ClientSession) -> dict:
    tools, cursor = {}, None
    while True:
        page = await session.list_tools(cursor=cursor)
        tools.update({tool.name: tool for tool in page.tools})
        if not page.nextCursor:
            return tools
        cursor = page.nextCursor


async def test_an_mcp_client_lists_the_assistants_as_tools_and_calls_them(server_url):
    client = get_client(url=server_url)
    threads_before = await client.threads.count()
    async with streamable_http_client(f"{server_url}/mcp") as (read, write, _), \
            ClientSession(read, write) as session:
        initialized = await session.initialize()
        assert initialized.serverInfo.name == "Aegra" and initialized.capabilities.tools is not None
        tools = await _all_tools(session)
        assert {"echo", "chat", "hitl", "failing", "factory"} <= set(tools)
        echo = tools["echo"]
        assert echo.description == "Echoes the last message and counts turns"
        # The message list is one string for the model to fill in; the graph's other keys are as they are.
        schema = echo.inputSchema
        assert schema["type"] == "object" and "$defs" not in schema
        assert schema["properties"]["messages"]["type"] == "string"
        assert schema["properties"]["turns"]["type"] == "integer"

        result = await session.call_tool("echo", {"messages": "Hello from MCP", "note": "n"})
        assert not result.isError
        output = json.loads(result.content[0].text)
        assert [m["content"] for m in output["messages"]] == ["Hello from MCP", "echo: Hello from MCP"]
        assert output["turns"] == 1 and output["note"] == "n"

        failed = await session.call_tool("failing", {})
        assert failed.isError
        assert failed.content[0].text == "ValueError: intentional failure in node boom"

        with pytest.raises(McpError, match="Unknown tool: nope"):
            await session.call_tool("nope", {})
    # Tool calls are stateless runs: they leave no thread behind (the TTL sweeper may only remove others').
    assert await client.threads.count() <= threads_before


async def test_tools_are_named_as_mcp_allows_and_a_name_two_assistants_share_is_refused(server_url):
    client = get_client(url=server_url)
    name = f"mcp  tool {uuid.uuid4().hex[:8]}!"
    first = await client.assistants.create("echo", name=name, description="the first")
    second = await client.assistants.create("echo", name=name.replace("!", "?"))  # the same tool name
    try:
        expected = tool_name(name)
        assert expected == name.replace("  ", "_").replace(" ", "_").rstrip("!")
        async with streamable_http_client(f"{server_url}/mcp") as (read, write, _), \
                ClientSession(read, write) as session:
            await session.initialize()
            tool = (await _all_tools(session))[expected]
            assert tool.title in (name, name.replace("!", "?"))
            with pytest.raises(McpError, match="Several assistants"):
                await session.call_tool(expected, {"messages": "hi"})
    finally:
        await client.assistants.delete(first["assistant_id"])
        await client.assistants.delete(second["assistant_id"])


async def test_tools_come_in_pages_of_100(server_url, http):
    client = get_client(url=server_url)
    missing = max(0, 101 - await client.assistants.count())  # at least two pages
    made = [(await client.assistants.create("echo", name=f"page filler {i}"))["assistant_id"] for i in range(missing)]
    try:
        total = await client.assistants.count()

        async def page(cursor: str | None) -> dict:
            params = {"cursor": cursor} if cursor is not None else {}
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params}
            return (await http.post("/mcp", json=body, headers=ACCEPT)).json()["result"]

        assert (await page(None))["nextCursor"] == "100"
        last = await page(str(total - 1))
        assert "nextCursor" not in last and len(last["tools"]) <= 1
    finally:
        for assistant_id in made:
            await client.assistants.delete(assistant_id)


def test_tool_names_keep_only_what_mcp_allows():
    assert tool_name("  My agent\tv2 (beta)  ") == "My_agent_v2_beta"
    assert tool_name("a.b-c_d") == "a.b-c_d"
    assert tool_name("x" * 200) == "x" * 128
    assert tool_name("日本") == ""


async def test_the_transport_answers_as_langgraph_api(http):
    def rpc(method: str, id_: object = 1, **params: object) -> dict:
        return {"jsonrpc": "2.0", "id": id_, "method": method, **({"params": params} if params else {})}

    async def post(body: object, headers: dict = ACCEPT):
        headers = {"Content-Type": "application/json", **headers}
        return await http.post("/mcp", content=json.dumps(body), headers=headers)

    for path in ("/mcp", "/mcp/"):  # no server-initiated stream: a 405 that says what the path serves
        refused = await http.get(path)
        assert refused.status_code == 405 and refused.json() == {"detail": "Method Not Allowed"}
        assert set(refused.headers["allow"].replace(" ", "").split(",")) == {"POST", "DELETE"}
    assert (await http.delete("/mcp")).status_code == 404  # no sessions
    assert (await post({"jsonrpc": "2.0", "method": "notifications/initialized"})).status_code == 202
    assert (await post({"jsonrpc": "2.0", "id": 7, "result": {}})).status_code == 202

    for body, headers, why in [
        ("not json", ACCEPT, "not JSON"),
        (rpc("ping"), {"Accept": "text/html"}, "Accept"),
        ([rpc("ping")], ACCEPT, "batches"),
        ({"id": 1, "method": "ping"}, ACCEPT, "jsonrpc"),
        ({"jsonrpc": "2.0"}, ACCEPT, "neither"),
    ]:
        if isinstance(body, str):
            response = await http.post("/mcp", content=body, headers=headers)
        else:
            response = await post(body, headers)
        assert response.status_code == 400 and why in response.json()["error"], (body, response.text)

    assert (await post(rpc("ping", id_=0))).json() == {"jsonrpc": "2.0", "id": 0, "result": {}}
    # With a trailing slash too, as langgraph-api mounts it (no redirect a client would have to follow).
    slash = await http.post("/mcp/", content=json.dumps(rpc("ping")), headers={"Content-Type": "application/json", **ACCEPT})
    assert slash.status_code == 200 and slash.json()["result"] == {}
    assert (await post(rpc("resources/list", id_="a"))).json() == {
        "jsonrpc": "2.0", "id": "a", "error": {"code": -32601, "message": "Method not found: resources/list"}
    }
    versions = [(await post(rpc("initialize", protocolVersion=v))).json()["result"]["protocolVersion"]
                for v in ("2025-03-26", "1999-01-01")]
    assert versions == ["2025-03-26", "2025-11-25"]  # the client's when we speak it, else our newest
    beyond = (await post(rpc("tools/list", cursor="100000"))).json()["result"]
    assert beyond == {"tools": []}
    for huge in ("99999999999999999999", 1e300):  # beyond the end too, however far (and however large for SQL)
        assert (await post(rpc("tools/list", cursor=huge))).json()["result"] == {"tools": []}
    missing = (await post(rpc("tools/call", arguments={}))).json()["error"]
    assert missing == {"code": -32602, "message": "Unknown tool: None"}
    bad_context = (await post(rpc("tools/call", name="echo", arguments={}, context="x"))).json()["error"]
    assert bad_context == {"code": -32602, "message": "context must be an object"}


async def test_a_tool_whose_graph_is_gone_is_an_invalid_params_error(server_url, database_url, http):
    """An assistant an earlier configuration left behind (its graph is no longer served) is not listed, and a call
    by its name is a JSON-RPC error, not the HTTP API's 404."""
    name = f"gone-{uuid.uuid4().hex[:8]}"
    await leftover_assistant(database_url, name)
    call = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": name, "arguments": {}}}
    answer = await http.post("/mcp", json=call, headers=ACCEPT)
    assert answer.status_code == 200
    assert answer.json()["error"]["code"] == -32602 and "not loaded" in answer.json()["error"]["message"]
