"""chat: one node calling langchain_core's GenericFakeChatModel (no API keys).

The reply is "fake reply to <last text>". The fake model streams it word by word, so
stream_mode="messages" yields several AIMessageChunk tokens.
"""

from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph


def _last_text(messages: list[Any]) -> str:
    if not messages:
        return ""
    content = getattr(messages[-1], "content", "")
    return content if isinstance(content, str) else str(content)


async def chat(state: MessagesState) -> dict[str, Any]:
    reply_text = f"fake reply to {_last_text(state['messages'])}"
    model = GenericFakeChatModel(messages=iter([AIMessage(content=reply_text)]))
    reply = await model.ainvoke(state["messages"])
    return {"messages": [reply]}


builder = StateGraph(MessagesState)
builder.add_node("chat", chat)
builder.add_edge(START, "chat")
builder.add_edge("chat", END)
graph = builder.compile()
