"""What the run engine reports about each run: correlation ids in its log lines, its span, its metrics.

`RunManager` calls two things: `origin()` when it creates a run (what must travel with the run to wherever it
executes), and `observe(...)` around the execution. With tracing and metrics off, observing only sets the
ids log lines carry.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aegra_server.observability import context

if TYPE_CHECKING:
    from aegra_server.observability.metrics import Metrics
    from aegra_server.observability.tracing import Tracing


@dataclass
class Observation:
    """Filled in by the run engine before the observed block ends."""

    status: str | None = None  # None: not finished here (handed back on shutdown)
    error: Mapping[str, Any] | None = None


class RunObserver:
    def __init__(self, tracing: Tracing | None = None, metrics: Metrics | None = None) -> None:
        self.tracing = tracing
        self.metrics = metrics

    def origin(self) -> dict[str, str]:
        """Stored in a new run's kwargs: the creating request's id and, when tracing, its span."""
        origin: dict[str, str] = {}
        request_id = context.request_id.get()
        if request_id:
            origin["request_id"] = request_id
        if self.tracing is not None:
            traceparent = self.tracing.traceparent()
            if traceparent:
                origin["traceparent"] = traceparent
        return origin

    @contextmanager
    def observe(
        self, run: Mapping[str, Any], graph_id: str, config: dict[str, Any], attempt: int = 1
    ) -> Iterator[Observation]:
        """Around one execution of a run. With tracing on, adds the span callback handler to `config`."""
        observation = Observation()
        started = time.monotonic()
        with context.run_scope(run, graph_id), ExitStack() as stack:
            if self.tracing is not None:
                stack.enter_context(self._traced(run, graph_id, config, attempt, observation))
            if self.metrics is not None:
                # Counted as it happens, not read at scrape time: with workers, a scrape reads the others' too.
                self.metrics.runs_executing.inc()
                stack.callback(self.metrics.runs_executing.dec)
            try:
                yield observation
            finally:
                self._measure(graph_id, observation, started)

    @contextmanager
    def _traced(
        self, run: Mapping[str, Any], graph_id: str, config: dict[str, Any], attempt: int, observation: Observation
    ) -> Iterator[None]:
        from opentelemetry import context as otel_context
        from opentelemetry import trace

        from aegra_server.observability.callbacks import SpanCallbackHandler
        from aegra_server.observability.tracing import run_attributes

        tracing = self.tracing
        span = tracing.start_run(run, graph_id, config, attempt)
        handler = SpanCallbackHandler(
            tracing.tracer, span, run_attributes(run, graph_id, config), tracing.capture_content
        )
        config["callbacks"] = [*(config.get("callbacks") or []), handler]
        # Current for the run's task: spans a graph makes with its own OpenTelemetry code join this trace.
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            otel_context.detach(token)
            handler.close()
            tracing.end_run(span, observation.status, observation.error)

    def _measure(self, graph_id: str, observation: Observation, started: float) -> None:
        if self.metrics is not None and observation.status is not None:
            self.metrics.observe_run(graph_id, observation.status, time.monotonic() - started)
