"""A chatbot that needs no API key: a deterministic fake model that streams its reply token by token.

Swap `model` for `langchain_openai.ChatOpenAI()` (or any chat model) to talk to a real LLM.
"""

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph


def _reply_to(text: str) -> AIMessage:
    return AIMessage(content=f"You said: {text}. (This is a fake model; set up a real one in examples/chatbot.py.)")


async def respond(state: MessagesState) -> dict:
    last = state["messages"][-1].content if state["messages"] else ""
    model = GenericFakeChatModel(messages=iter([_reply_to(str(last))]))
    return {"messages": [await model.ainvoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("respond", respond)
builder.add_edge(START, "respond")
builder.add_edge("respond", END)
graph = builder.compile()
