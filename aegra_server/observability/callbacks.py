"""LangChain callbacks → OpenTelemetry spans: one per graph node, model call, tool call and retrieval.

The handler is added to a run's config callbacks, so LangGraph hands it every runnable it starts. Internal
runnables LangGraph hides from tracers (`langsmith:hidden`: channel writes, routing) get no span; their
children hang under the nearest visible ancestor. Spans are started with an explicit parent and never made
current, so the handler does not disturb the run's own context.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from aegra_server.observability.redact import redact
from aegra_server.serde import jsonable

HIDDEN_TAG = "langsmith:hidden"
# Long enough for a conversation turn, short enough that a large state does not make every span huge.
MAX_CONTENT_CHARS = 8000


def content(value: Any) -> str:
    """A value as JSON text for `input.value` / `output.value`: truncated and with secrets redacted."""
    try:
        text = value if isinstance(value, str) else json.dumps(jsonable(value), ensure_ascii=False, default=str)
    except Exception:
        text = repr(value)
    if len(text) > MAX_CONTENT_CHARS:
        text = text[:MAX_CONTENT_CHARS] + "…"
    return redact(text)


def _name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any], default: str) -> str:
    if kwargs.get("name"):
        return str(kwargs["name"])
    if serialized:
        if serialized.get("name"):
            return str(serialized["name"])
        ids = serialized.get("id")
        if isinstance(ids, list) and ids:
            return str(ids[-1])
    return default


def _is_bubble_up(error: BaseException) -> bool:
    """LangGraph's control flow (interrupt, Command to a parent graph) travels as exceptions; not failures."""
    return any(cls.__name__ == "GraphBubbleUp" for cls in type(error).__mro__)


class SpanCallbackHandler(BaseCallbackHandler):
    """Spans for one run's runnables, children of `root` (the run's span)."""

    # Called on the event loop, in order; an executor hop per event would reorder starts and ends.
    run_inline = True
    raise_error = False

    def __init__(self, tracer: trace.Tracer, root: Span, attributes: Mapping[str, Any], capture_content: bool) -> None:
        self._tracer = tracer
        self._root = root
        self._attributes = dict(attributes)
        self._capture = capture_content
        self._spans: dict[UUID, Span] = {}
        self._stand_ins: dict[UUID, Span] = {}  # hidden runnables → the span their children belong under

    # ---- bookkeeping ------------------------------------------------------------------------------------------

    def _parent(self, parent_run_id: UUID | None) -> Span:
        if parent_run_id is None:
            return self._root
        return self._spans.get(parent_run_id) or self._stand_ins.get(parent_run_id) or self._root

    def _start(
        self, run_id: UUID, parent_run_id: UUID | None, name: str, kind: str, attributes: dict[str, Any]
    ) -> None:
        parent = self._parent(parent_run_id)
        span = self._tracer.start_span(
            name,
            context=trace.set_span_in_context(parent),
            attributes={
                **self._attributes,
                "openinference.span.kind": kind,
                "langfuse.observation.type": _LANGFUSE_TYPE[kind],
                **attributes,
            },
        )
        self._spans[run_id] = span

    def _end(self, run_id: UUID, output: Any = None, attributes: Mapping[str, Any] | None = None) -> None:
        self._stand_ins.pop(run_id, None)
        span = self._spans.pop(run_id, None)
        if span is None:
            return
        if attributes:
            span.set_attributes(dict(attributes))
        if output is not None and self._capture:
            span.set_attribute("output.value", content(output))
        span.set_status(Status(StatusCode.OK))
        span.end()

    def _fail(self, run_id: UUID, error: BaseException) -> None:
        self._stand_ins.pop(run_id, None)
        span = self._spans.pop(run_id, None)
        if span is None:
            return
        if _is_bubble_up(error):
            span.set_attribute("aegra.interrupted", True)
        else:
            span.set_status(Status(StatusCode.ERROR, redact(f"{type(error).__name__}: {error}")))
            span.add_event(
                "exception",
                {"exception.type": type(error).__name__, "exception.message": redact(str(error))},
            )
        span.end()

    def _input(self, value: Any) -> dict[str, Any]:
        return {"input.value": content(value)} if self._capture else {}

    def close(self) -> None:
        """End whatever is still open (a cancelled run stops mid-node)."""
        for span in self._spans.values():
            span.set_attribute("aegra.cancelled", True)
            span.end()
        self._spans.clear()
        self._stand_ins.clear()

    # ---- graph nodes and other chains ---------------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if parent_run_id is None or HIDDEN_TAG in (tags or ()):
            # The graph itself is the run's span; hidden runnables are LangGraph's plumbing.
            self._stand_ins[run_id] = self._parent(parent_run_id)
            return
        metadata = metadata or {}
        attributes: dict[str, Any] = self._input(inputs)
        node = metadata.get("langgraph_node")
        if node:
            attributes["aegra.node"] = str(node)
        if isinstance(metadata.get("langgraph_step"), int):
            attributes["aegra.step"] = metadata["langgraph_step"]
        self._start(run_id, parent_run_id, _name(serialized, kwargs, str(node or "chain")), "CHAIN", attributes)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, outputs)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)

    # ---- model calls -------------------------------------------------------------------------------------------

    def _start_llm(self, serialized, prompt: Any, run_id, parent_run_id, metadata, kwargs) -> None:
        metadata = metadata or {}
        params = kwargs.get("invocation_params") or {}
        model = params.get("model") or params.get("model_name") or metadata.get("ls_model_name")
        attributes: dict[str, Any] = {"gen_ai.operation.name": "chat", **self._input(prompt)}
        if model:
            attributes.update({"gen_ai.request.model": str(model), "llm.model_name": str(model)})
        if metadata.get("ls_provider"):
            provider = str(metadata["ls_provider"])
            attributes.update({"gen_ai.system": provider, "llm.provider": provider})
        if metadata.get("langgraph_node"):
            attributes["aegra.node"] = str(metadata["langgraph_node"])
        self._start(run_id, parent_run_id, _name(serialized, kwargs, "llm"), "LLM", attributes)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        prompt = messages[0] if len(messages) == 1 else messages
        self._start_llm(serialized, prompt, run_id, parent_run_id, metadata, kwargs)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        prompt = prompts[0] if len(prompts) == 1 else prompts
        self._start_llm(serialized, prompt, run_id, parent_run_id, metadata, kwargs)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        generations: Sequence[Sequence[Any]] = getattr(response, "generations", None) or []
        outputs = [getattr(g, "message", None) or getattr(g, "text", None) for batch in generations for g in batch]
        attributes = _usage(response, generations)
        self._end(run_id, outputs[0] if len(outputs) == 1 else outputs, attributes)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)

    # ---- tools and retrievers ----------------------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _name(serialized, kwargs, "tool")
        given = inputs if inputs is not None else input_str
        attributes = {"tool.name": name, "gen_ai.tool.name": name, **self._input(given)}
        self._start(run_id, parent_run_id, name, "TOOL", attributes)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, getattr(output, "content", output))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(run_id, parent_run_id, _name(serialized, kwargs, "retriever"), "RETRIEVER", self._input(query))

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, [getattr(d, "page_content", d) for d in documents or []])

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)


_LANGFUSE_TYPE = {"CHAIN": "chain", "LLM": "generation", "TOOL": "tool", "RETRIEVER": "retriever", "AGENT": "agent"}


def _usage(response: Any, generations: Sequence[Sequence[Any]]) -> dict[str, int]:
    """Token counts from the message's usage_metadata, or the provider's llm_output when that is all there is."""
    usage: dict[str, int] = {}
    for batch in generations:
        for generation in batch:
            metadata = getattr(getattr(generation, "message", None), "usage_metadata", None) or {}
            for key in ("input_tokens", "output_tokens", "total_tokens"):
                if isinstance(metadata.get(key), int):
                    usage[key] = usage.get(key, 0) + metadata[key]
    if not usage:
        token_usage = (getattr(response, "llm_output", None) or {}).get("token_usage") or {}
        openai_names = {
            "prompt_tokens": "input_tokens", "completion_tokens": "output_tokens", "total_tokens": "total_tokens"
        }
        usage = {openai_names[k]: v for k, v in token_usage.items() if k in openai_names and isinstance(v, int)}
    # Each count under GenAI's name (Langfuse) and OpenInference's (Phoenix).
    names = {
        "input_tokens": ("gen_ai.usage.input_tokens", "llm.token_count.prompt"),
        "output_tokens": ("gen_ai.usage.output_tokens", "llm.token_count.completion"),
        "total_tokens": ("llm.token_count.total",),
    }
    return {attribute: usage[key] for key, attributes in names.items() if key in usage for attribute in attributes}
