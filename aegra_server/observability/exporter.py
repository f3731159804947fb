"""Where spans go: one OTLP/HTTP target per name in OTEL_TARGETS, each with its own endpoint and headers.

`export_targets` is pure (settings in, endpoints and headers out) and is tested with golden values.
`OTLPHTTPExporter` posts the official protobuf encoding with exactly the target's headers. The stock
OTLPSpanExporter would do the posting, but it merges OTEL_EXPORTER_OTLP_HEADERS into every exporter it builds,
which would send one backend's credentials to the others when spans fan out.
"""

from __future__ import annotations

import base64
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from aegra_server.errors import ConfigError
from aegra_server.observability.settings import ObservabilitySettings, parse_headers

log = logging.getLogger("aegra.tracing")

TRACES_PATH = "/v1/traces"
# Spans are exported from a background thread; a collector that does not answer within this is skipped for
# the batch, so shutting down never waits on it for long either.
EXPORT_TIMEOUT_SECONDS = 5.0
# Langfuse's ingestion API version for OTLP spans; its SDKs send the same header.
LANGFUSE_INGESTION_VERSION = "4"


@dataclass(frozen=True)
class ExportTarget:
    name: str
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # headers carry credentials
        return f"ExportTarget({self.name}, {self.endpoint})"


def _traces_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def langfuse_target(settings: ObservabilitySettings) -> ExportTarget:
    secret = settings.langfuse_secret_key.get_secret_value()
    if not settings.langfuse_public_key or not secret:
        raise ConfigError(
            "OTEL_TARGETS includes LANGFUSE, but LANGFUSE_PUBLIC_KEY or LANGFUSE_SECRET_KEY is not set",
            "copy both keys from the Langfuse project's settings into the environment or .env",
        )
    token = base64.b64encode(f"{settings.langfuse_public_key}:{secret}".encode()).decode()
    return ExportTarget(
        "LANGFUSE",
        settings.langfuse_base_url.rstrip("/") + "/api/public/otel" + TRACES_PATH,
        {"authorization": f"Basic {token}", "x-langfuse-ingestion-version": LANGFUSE_INGESTION_VERSION},
    )


def phoenix_target(settings: ObservabilitySettings) -> ExportTarget:
    key = settings.phoenix_api_key.get_secret_value()
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return ExportTarget("PHOENIX", _traces_url(settings.phoenix_collector_endpoint), headers)


def otlp_target(settings: ObservabilitySettings) -> ExportTarget:
    if settings.otlp_traces_endpoint:
        endpoint = settings.otlp_traces_endpoint  # the signal-specific variable is a full URL, used as is
    elif settings.otlp_endpoint:
        endpoint = settings.otlp_endpoint.rstrip("/") + TRACES_PATH
    else:
        raise ConfigError(
            "OTEL_TARGETS includes OTLP, but OTEL_EXPORTER_OTLP_ENDPOINT is not set",
            "set it to the collector's OTLP/HTTP base URL, e.g. http://localhost:4318",
        )
    try:
        headers = parse_headers(settings.otlp_headers.get_secret_value())
    except ValueError as exc:
        raise ConfigError(f"OTEL_EXPORTER_OTLP_HEADERS: {exc}", "write it as name=value,name2=value2") from None
    return ExportTarget("OTLP", endpoint, headers)


def export_targets(settings: ObservabilitySettings) -> list[ExportTarget]:
    """The network targets named in OTEL_TARGETS (CONSOLE is not one), validated."""
    builders = {"LANGFUSE": langfuse_target, "PHOENIX": phoenix_target, "OTLP": otlp_target}
    return [builders[name](settings) for name in settings.targets if name in builders]


class OTLPHTTPExporter(SpanExporter):
    """OTLP over HTTP with protobuf bodies. One attempt per batch: a failed batch is dropped, never retried
    into a growing backlog. A failure is logged once, and again only after the target recovered."""

    def __init__(self, target: ExportTarget, timeout: float = EXPORT_TIMEOUT_SECONDS) -> None:
        self.target = target
        self.timeout = timeout
        self._failing = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        body = encode_spans(spans).SerializeToString()
        request = urllib.request.Request(
            self.target.endpoint,
            data=body,
            method="POST",
            headers={"content-type": "application/x-protobuf", **self.target.headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            return self._failed(f"HTTP {exc.code}")
        except (OSError, ValueError) as exc:  # refused, unreachable, timed out, bad URL
            return self._failed(type(getattr(exc, "reason", exc)).__name__)
        if self._failing:
            self._failing = False
            log.info("exporting spans to %s (%s) again", self.target.name, self.target.endpoint)
        return SpanExportResult.SUCCESS

    def _failed(self, reason: str) -> SpanExportResult:
        if not self._failing:
            self._failing = True
            log.warning(
                "could not export spans to %s (%s): %s; dropping them until it answers",
                self.target.name, self.target.endpoint, reason,
            )
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
