"""Logging: secrets redacted, correlation ids stamped, JSON and console formats, process-wide setup."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest

from aegra_server.observability import context
from aegra_server.observability.logs import (
    ConsoleFormatter,
    ContextFilter,
    JSONFormatter,
    SecretFilter,
    build_handler,
    configure_logging,
)
from aegra_server.observability.redact import MASK, hide_secret, redact, redact_value
from aegra_server.observability.settings import ObservabilitySettings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://aegra:s3cr%40t@db:5432/aegra", "postgresql://aegra:***@db:5432/aegra"),
        ("connecting to postgresql+psycopg://u:pw@h/db now", "connecting to postgresql+psycopg://u:***@h/db now"),
        ("redis://:only-password@cache:6379", "redis://:***@cache:6379"),
        ("postgresql://aegra@db/aegra", "postgresql://aegra@db/aegra"),  # no password, nothing to hide
        ("http://example.com:8080/path@x", "http://example.com:8080/path@x"),  # a port is not a password
        ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer ***"),
        ("authorization=Basic cGs6c2s=", "authorization=Basic ***"),
        ("headers {'x-api-key': 'k-123', 'accept': 'json'}", "headers {'x-api-key': '***', 'accept': 'json'}"),
        ('{"api_key": "abc", "n": 1}', '{"api_key": "***", "n": 1}'),
        ("OPENAI_API_KEY=sk-proj-abc LANGFUSE_SECRET_KEY=xyz", "OPENAI_API_KEY=*** LANGFUSE_SECRET_KEY=***"),
        ("password=hunter2&user=bob", "password=***&user=bob"),
        ("GET /store?token=t0k3n&limit=5", "GET /store?token=***&limit=5"),
        ("key sk-abcdefghijklmnop in the text", "key sk-*** in the text"),
        ("pk-lf-12345678 and sk-lf-87654321", "pk-lf-*** and sk-lf-***"),
        ("lsv2_pt_0123456789abcdef", "lsv2_pt_***"),
        # Near misses stay as they are: counts of tokens are not tokens.
        ("total_tokens: 15, max_tokens=100", "total_tokens: 15, max_tokens=100"),
        ("password reset requested", "password reset requested"),
        ("secretary: Jane", "secretary: Jane"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent


def test_redact_value_hides_whole_values_under_secret_keys() -> None:
    value = {
        "Authorization": "Bearer abc",
        "nested": [{"password": {"deep": "x"}, "url": "postgres://u:p@h/d"}],
        "count": 3,
        "tokens": 10,
    }
    assert redact_value(value) == {
        "Authorization": MASK,
        "nested": [{"password": MASK, "url": "postgres://u:***@h/d"}],
        "count": 3,
        "tokens": 10,
    }


def record(msg: str, *args: object, exc_info=None, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("aegra.test", logging.INFO, __file__, 1, msg, args, exc_info)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_secret_filter_covers_arguments_fields_and_tracebacks() -> None:
    try:
        raise ConnectionError("could not reach postgresql://aegra:topsecret@db/aegra")
    except ConnectionError:
        import sys

        exc_info = sys.exc_info()
    made = record(
        "connecting with %s as %r", "postgresql://aegra:topsecret@db/aegra", {"api_key": "abc"},
        exc_info=exc_info, headers={"authorization": "Bearer zzz"},
    )
    assert SecretFilter().filter(made)
    line = JSONFormatter().format(made)
    assert "topsecret" not in line and "zzz" not in line and "abc" not in line
    entry = json.loads(line)
    assert entry["message"] == "connecting with postgresql://aegra:***@db/aegra as {'api_key': '***'}"
    assert entry["headers"] == {"authorization": MASK}
    assert "postgresql://aegra:***@db/aegra" in entry["exception"]


def test_json_line_carries_level_logger_fields_and_ids() -> None:
    made = record("POST %s %d", "/threads", 200, method="POST", status=200)
    token = context.request_id.set("req-1")
    try:
        ContextFilter().filter(made)
    finally:
        context.request_id.reset(token)
    entry = json.loads(JSONFormatter().format(made))
    assert entry["level"] == "INFO" and entry["logger"] == "aegra.test"
    assert entry["message"] == "POST /threads 200"
    assert (entry["method"], entry["status"], entry["request_id"]) == ("POST", 200, "req-1")
    assert entry["timestamp"].endswith("+00:00")


def test_run_scope_stamps_the_run_and_its_request() -> None:
    run = {"run_id": "r1", "thread_id": "t1", "assistant_id": "a1", "kwargs": {"request_id": "from-request"}}
    with context.run_scope(run, "echo"):
        made = record("inside the run")
        ContextFilter().filter(made)
    assert (made.request_id, made.run_id, made.thread_id, made.graph_id) == ("from-request", "r1", "t1", "echo")
    assert context.current_fields() == {}  # reset afterwards
    line = ConsoleFormatter().format(made)
    assert line.endswith("INFO  aegra.test: inside the run  request_id=from-request run_id=r1 thread_id=t1")


def test_explicit_fields_win_over_the_context() -> None:
    made = record("x", request_id="explicit")
    token = context.request_id.set("ambient")
    try:
        ContextFilter().filter(made)
    finally:
        context.request_id.reset(token)
    assert made.request_id == "explicit"


@pytest.mark.parametrize(
    ("header", "kept"),
    [("abc-123", True), ("00f067aa0ba902b7:trace/1", True), ("x" * 129, False), ("two words", False),
     ("line\nbreak", False), ("", False), (None, False)],
)
def test_accept_request_id(header: str | None, kept: bool) -> None:
    accepted = context.accept_request_id(header)
    if kept:
        assert accepted == header
    else:
        assert uuid.UUID(accepted).version == 4


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Restore the root logger and uvicorn's loggers after a test that configures logging."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    uvicorn = {name: logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")}
    saved_uvicorn = {name: (list(lg.handlers), lg.propagate, lg.level) for name, lg in uvicorn.items()}
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, (handlers, propagate, level) in saved_uvicorn.items():
        uvicorn[name].handlers[:] = handlers
        uvicorn[name].propagate = propagate
        uvicorn[name].setLevel(level)
    logging.captureWarnings(False)


def test_configure_logging_installs_one_handler_and_routes_uvicorn(root_logging) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", "DEBUG", first)
    configure_logging("console", "WARNING", second)  # a reload configures again: still one handler
    root = logging.getLogger()
    assert [h.get_name() for h in root.handlers].count("aegra") == 1
    assert root.level == logging.WARNING
    logging.getLogger("uvicorn.error").warning("from uvicorn")
    logging.getLogger("aegra.runs").info("below the level")
    assert first.getvalue() == ""
    assert second.getvalue().splitlines()[-1].endswith("WARNING uvicorn.error: from uvicorn")
    assert "below the level" not in second.getvalue()
    access = logging.getLogger("uvicorn.access")
    assert not access.handlers and not access.propagate  # our middleware is the access log


def test_handler_formats_by_name() -> None:
    assert isinstance(build_handler("json").formatter, JSONFormatter)
    assert isinstance(build_handler("console").formatter, ConsoleFormatter)


def test_log_settings_defaults_and_overrides(monkeypatch) -> None:
    for name in ("LOG_FORMAT", "LOG_LEVEL", "LOG_EXCLUDE_PATHS"):
        monkeypatch.delenv(name, raising=False)
    defaults = ObservabilitySettings()
    assert defaults.resolved_log_format(dev_mode=True) == "console"
    assert defaults.resolved_log_format(dev_mode=False) == "json"
    assert defaults.exclude_paths == {"/ok", "/health", "/ready"}
    assert defaults.log_level == "INFO"
    custom = ObservabilitySettings(LOG_FORMAT="JSON", LOG_LEVEL="debug", LOG_EXCLUDE_PATHS="/metrics, /ok,")
    assert custom.resolved_log_format(dev_mode=True) == "json"
    assert custom.log_level == "DEBUG"
    assert custom.exclude_paths == {"/metrics", "/ok"}
    with pytest.raises(ValueError, match="LOG_LEVEL"):
        ObservabilitySettings(LOG_LEVEL="loud")


def test_a_bad_setting_from_the_environment_is_a_config_error(monkeypatch, tmp_path) -> None:
    from aegra_server.errors import ConfigError
    from aegra_server.settings import settings_from_env

    monkeypatch.setenv("AEGRA_CONFIG", str(tmp_path / "aegra.json"))
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="LOG_LEVEL: LOG_LEVEL must be one of"):
        settings_from_env()
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("OTEL_TARGETS", "OTLP,DATADOG")
    with pytest.raises(ConfigError, match="OTEL_TARGETS has unknown target.*DATADOG"):
        settings_from_env()


@pytest.mark.parametrize(("text", "secret", "expected"), [
    # A short password hides where it stands alone, never inside the words around it.
    ("connection to server at 1.2.3.4, port 1 failed: accepting p", "p", "connection to server at 1.2.3.4, port 1 failed: accepting ***"),
    ("user=u password=p host=h", "p", "user=u password=*** host=h"),
    ("postgresql://u:p%40ss@h/db and p@ss", "p@ss", "postgresql://u:***@h/db and ***"),
    ("nothing to hide", None, "nothing to hide"),
])
def test_hide_secret(text: str, secret: str | None, expected: str) -> None:
    assert hide_secret(text, secret) == expected
