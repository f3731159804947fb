"""What an operator turns on with environment variables: log format and level, tracing targets, metrics.

Everything here is off (or at its quietest) unless set. The variable names follow the tools they configure:
`OTEL_*` as OpenTelemetry documents them, `LANGFUSE_*` and `PHOENIX_*` as those products' own SDKs read them,
so one `.env` serves Aegra and the SDKs alike.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import unquote

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TARGETS = ("LANGFUSE", "PHOENIX", "OTLP", "CONSOLE")
DEFAULT_EXCLUDE_PATHS = "/ok,/health,/ready"
DEFAULT_LANGFUSE_BASE_URL = "https://cloud.langfuse.com"
DEFAULT_PHOENIX_ENDPOINT = "http://localhost:6006"


def comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_headers(value: str) -> dict[str, str]:
    """`name=value,name2=value2` as OTEL_EXPORTER_OTLP_HEADERS spells them (values may be URL-encoded)."""
    headers: dict[str, str] = {}
    for position, item in enumerate(comma_list(value), start=1):
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            # The item itself may be a bare credential: name only its position.
            raise ValueError(f"header {position} is not written name=value")
        headers[unquote(name.strip()).lower()] = unquote(raw.strip())
    return headers


class ObservabilitySettings(BaseSettings):
    """Logging, tracing and metrics settings, read from the environment (tests construct them directly)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    # console (human-readable) or json (one object per line); unset: console under `aegra dev`, json otherwise.
    log_format: Literal["console", "json"] | None = Field(default=None, alias="LOG_FORMAT")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    # Paths whose requests get no access-log line (health probes by default); comma-separated.
    log_exclude_paths: str = Field(default=DEFAULT_EXCLUDE_PATHS, alias="LOG_EXCLUDE_PATHS")

    enable_metrics: bool = Field(default=False, alias="ENABLE_METRICS")

    # Where spans go: a comma list of LANGFUSE, PHOENIX, OTLP, CONSOLE. Empty: no tracing at all.
    otel_targets: str = Field(default="", alias="OTEL_TARGETS")
    otel_service_name: str = Field(default="aegra", alias="OTEL_SERVICE_NAME")
    # Record inputs and outputs (messages, tool arguments) on spans; turn off if they must not leave the server.
    otel_capture_content: bool = Field(default=True, alias="OTEL_CAPTURE_CONTENT")
    otlp_endpoint: str = Field(default="", alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otlp_traces_endpoint: str = Field(default="", alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    otlp_headers: SecretStr = Field(default=SecretStr(""), alias="OTEL_EXPORTER_OTLP_HEADERS")

    langfuse_base_url: str = Field(
        default=DEFAULT_LANGFUSE_BASE_URL, validation_alias=AliasChoices("LANGFUSE_BASE_URL", "LANGFUSE_HOST")
    )
    langfuse_public_key: str = Field(default="", alias="LANGFUSE_PUBLIC_KEY")
    langfuse_secret_key: SecretStr = Field(default=SecretStr(""), alias="LANGFUSE_SECRET_KEY")

    phoenix_collector_endpoint: str = Field(default=DEFAULT_PHOENIX_ENDPOINT, alias="PHOENIX_COLLECTOR_ENDPOINT")
    phoenix_api_key: SecretStr = Field(default=SecretStr(""), alias="PHOENIX_API_KEY")
    phoenix_project_name: str = Field(default="", alias="PHOENIX_PROJECT_NAME")

    @field_validator("otel_targets")
    @classmethod
    def _known_targets(cls, value: str) -> str:
        unknown = [t for t in comma_list(value) if t.upper() not in TARGETS]
        if unknown:
            raise ValueError(
                f"OTEL_TARGETS has unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"):
            raise ValueError(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got {value!r}")
        return level

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_case(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    @property
    def targets(self) -> list[str]:
        return list(dict.fromkeys(t.upper() for t in comma_list(self.otel_targets)))

    @property
    def tracing_enabled(self) -> bool:
        return bool(self.targets)

    @property
    def exclude_paths(self) -> frozenset[str]:
        return frozenset(comma_list(self.log_exclude_paths))

    def resolved_log_format(self, dev_mode: bool) -> str:
        return self.log_format or ("console" if dev_mode else "json")
