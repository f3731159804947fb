"""Logs, traces and metrics an operator can use; everything configured by environment variables.

`Observability` is what one app holds: its settings, its metrics registry (ENABLE_METRICS), its tracing
(OTEL_TARGETS) and the observer the run engine reports to. Building it is cheap and starts nothing;
`start()` (in the lifespan) opens the span exporters' threads and `shutdown()` flushes them.
OpenTelemetry's SDK is imported only when tracing is on, so it stays an optional extra (`otel`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aegra_server.errors import ConfigError
from aegra_server.observability.runs import RunObserver
from aegra_server.observability.settings import ObservabilitySettings

if TYPE_CHECKING:
    from aegra_server.observability.metrics import Metrics
    from aegra_server.observability.tracing import Tracing


def _tracing(settings: ObservabilitySettings) -> Tracing:
    try:
        from aegra_server.observability.tracing import Tracing
    except ImportError as exc:
        raise ConfigError(
            f"OTEL_TARGETS is set to {settings.otel_targets}, but OpenTelemetry's SDK is not installed ({exc.name})",
            # By the packages' own names: `aegra[otel]` would fetch PyPI's `aegra`, another project.
            "pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-common (pipx: pipx inject aegra "
            "with the same packages), or unset OTEL_TARGETS",
        ) from None
    return Tracing(settings)


class Observability:
    def __init__(self, settings: ObservabilitySettings) -> None:
        self.settings = settings
        self.metrics: Metrics | None = None
        if settings.enable_metrics:
            from aegra_server.observability.metrics import Metrics

            self.metrics = Metrics()
        self.tracing: Tracing | None = _tracing(settings) if settings.tracing_enabled else None
        self.runs = RunObserver(self.tracing, self.metrics)

    def start(self) -> None:
        if self.tracing is not None:
            self.tracing.start()

    def shutdown(self) -> None:
        if self.tracing is not None:
            self.tracing.shutdown()
        if self.metrics is not None:
            self.metrics.close()


__all__ = ["Observability", "ObservabilitySettings", "RunObserver"]
