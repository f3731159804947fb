"""OpenTelemetry tracing: a span per HTTP request and per run, fanned out to every target in OTEL_TARGETS.

The app owns its TracerProvider (never the global one), so tracing is configured per app and tests can run
several. Each target gets its own BatchSpanProcessor: spans are queued in memory and exported from a
background thread, so a slow or dead collector costs a run nothing.

Span attributes follow three vocabularies at once, so each backend shows the same trace well: OpenTelemetry's
(`http.*`, `gen_ai.*`), OpenInference's (`openinference.span.kind`, `input.value`, `session.id`, `user.id`),
which Phoenix reads, and Langfuse's (`langfuse.observation.type`), plus our own `aegra.*` ids.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from aegra_server.observability.exporter import EXPORT_TIMEOUT_SECONDS, OTLPHTTPExporter, export_targets
from aegra_server.observability.redact import redact
from aegra_server.observability.settings import ObservabilitySettings

log = logging.getLogger("aegra.tracing")

TRACER_NAME = "aegra"
_PROPAGATOR = TraceContextTextMapPropagator()


def user_identity(config: Mapping[str, Any]) -> str | None:
    """The authenticated user of a run, as the auth layer puts it in `configurable` (langgraph-api's keys)."""
    configurable = config.get("configurable") or {}
    identity = configurable.get("langgraph_auth_user_id")
    if identity:
        return str(identity)
    user = configurable.get("langgraph_auth_user")
    if isinstance(user, Mapping):
        identity = user.get("identity")
    elif isinstance(user, str):
        identity = user
    else:
        identity = getattr(user, "identity", None)
    return str(identity) if identity else None


def run_attributes(run: Mapping[str, Any], graph_id: str, config: Mapping[str, Any]) -> dict[str, str]:
    """The ids every span of a run carries, under our names and the ones Langfuse and Phoenix group by."""
    attributes = {
        "aegra.run_id": str(run["run_id"]),
        "aegra.thread_id": str(run["thread_id"]),
        "aegra.assistant_id": str(run["assistant_id"]),
        "aegra.graph_id": graph_id,
        "session.id": str(run["thread_id"]),
    }
    user = user_identity(config)
    if user:
        attributes.update({"user.id": user, "enduser.id": user})
    return attributes


def _one_line(span: Any) -> str:
    return span.to_json(indent=None) + "\n"


class _Stdout:
    """sys.stdout as it is when a span is printed (it may have been replaced since tracing started)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


class Tracing:
    def __init__(self, settings: ObservabilitySettings) -> None:
        self.targets = export_targets(settings)  # validated now, so a bad setting stops the start-up
        self.console = "CONSOLE" in settings.targets
        self.capture_content = settings.otel_capture_content
        resource = {"service.name": settings.otel_service_name}
        if "PHOENIX" in settings.targets and settings.phoenix_project_name:
            resource["openinference.project.name"] = settings.phoenix_project_name
        self._resource = Resource.create(resource)
        self._processors: list[SpanProcessor] = []
        self.provider: TracerProvider | None = None
        self.tracer: trace.Tracer = trace.NoOpTracer()

    def start(self) -> None:
        """Create the provider and one batch processor (with its export thread) per target."""
        self.provider = TracerProvider(resource=self._resource, shutdown_on_exit=False)
        exporters: list[Any] = [OTLPHTTPExporter(target) for target in self.targets]
        if self.console:
            exporters.append(ConsoleSpanExporter(out=_Stdout(), formatter=_one_line))
        for exporter in exporters:
            processor = BatchSpanProcessor(exporter)
            self.provider.add_span_processor(processor)
            self._processors.append(processor)
        self.tracer = self.provider.get_tracer(TRACER_NAME)
        log.info("tracing to %s", ", ".join([t.name for t in self.targets] + (["CONSOLE"] if self.console else [])))

    def force_flush(self) -> None:
        for processor in self._processors:
            processor.force_flush()

    def shutdown(self, timeout: float = EXPORT_TIMEOUT_SECONDS + 1) -> None:
        """Export what is queued, every target at once, waiting at most `timeout` seconds in all."""
        threads = [threading.Thread(target=p.shutdown, daemon=True, name="aegra-span-flush") for p in self._processors]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout)
        self._processors.clear()
        self.tracer = trace.NoOpTracer()

    # ---- spans ----------------------------------------------------------------------------------------------

    def start_request(self, scope: Mapping[str, Any], request_id: str) -> tuple[Span, object]:
        """A server span for one HTTP request (an ASGI scope), current until `end_request`; it continues the
        client's trace when the request carries a traceparent."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        span = self.tracer.start_span(
            f"{method} {path}",
            context=_PROPAGATOR.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path, "aegra.request_id": request_id},
        )
        return span, otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def end_request(started: tuple[Span, object], route: str, status: int, user: object = None) -> None:
        span, token = started
        otel_context.detach(token)
        span.update_name(f"{span.name.split(' ', 1)[0]} {route}")  # the template: one name for all threads
        span.set_attributes({"http.route": route, "http.response.status_code": status})
        if user:
            span.set_attributes({"user.id": str(user), "enduser.id": str(user)})
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    @staticmethod
    def traceparent() -> str | None:
        """The current span as a W3C traceparent, to store with a run that starts later or elsewhere."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get("traceparent")

    def start_run(self, run: Mapping[str, Any], graph_id: str, config: Mapping[str, Any], attempt: int) -> Span:
        """The span of one run, a child of the request that created it (its traceparent travels in kwargs)."""
        kwargs = run.get("kwargs") or {}
        traceparent = kwargs.get("traceparent")
        if isinstance(traceparent, str):
            parent = _PROPAGATOR.extract({"traceparent": traceparent})
        else:
            parent = otel_context.Context()  # a root span, not a child of whatever is current
        attributes: dict[str, Any] = {
            **run_attributes(run, graph_id, config),
            "aegra.run.attempt": attempt,
            "openinference.span.kind": "AGENT",
            "langfuse.observation.type": "agent",
            "langfuse.trace.name": graph_id,
        }
        if isinstance(kwargs.get("request_id"), str):
            attributes["aegra.request_id"] = kwargs["request_id"]
        return self.tracer.start_span(f"run {graph_id}", context=parent, kind=SpanKind.INTERNAL, attributes=attributes)

    @staticmethod
    def end_run(span: Span, status: str | None, error: Mapping[str, Any] | None = None) -> None:
        span.set_attribute("aegra.run.status", status or "released")
        if status == "error":
            message = redact(f"{error.get('error')}: {error.get('message')}") if error else None
            span.set_status(Status(StatusCode.ERROR, message))
        elif status == "success":
            span.set_status(Status(StatusCode.OK))
        span.end()
