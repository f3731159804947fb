"""Process-wide logging: one handler on the root logger, human-readable or JSON lines, secrets redacted.

`configure_logging` is called once by the server process's entry point (`app_from_env`), never by
`create_app`, so building an app in a test leaves the test process's logging alone. uvicorn's own loggers are
routed through the same handler, so under `aegra serve` every line on stderr is one JSON object.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import IO, Any

from aegra_server.observability.context import current_fields
from aegra_server.observability.redact import redact, redact_value

ACCESS_LOGGER = "aegra.access"
# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
# uvicorn's copy of the message with terminal colours: noise outside a terminal.
_DROPPED_FIELDS = frozenset({"color_message"})
# The ids a console line ends with; JSON lines carry assistant_id and graph_id as well.
_CONSOLE_IDS = ("request_id", "run_id", "thread_id")
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error")


class ContextFilter(logging.Filter):
    """Stamp each record with the ids of the request and run it was logged in (see context.py)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current_fields().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class SecretFilter(logging.Filter):
    """Redact database passwords, Authorization headers and API keys from the message, its fields and any
    traceback, before any formatter sees them."""

    _exceptions = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call; logging reports it itself
            return True
        record.msg, record.args = redact(message), None
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRIBUTES:
                setattr(record, key, redact_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exceptions.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v
        for k, v in vars(record).items()
        if k not in _RECORD_ATTRIBUTES and k not in _DROPPED_FIELDS and not k.startswith("_")
    }


class JSONFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, the correlation ids and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(extra_fields(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """`12:00:01.123 INFO  aegra.access: GET /threads 200 3.1 ms  request_id=…` — for a person at a terminal."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (stdlib name)
        return time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record)} {record.levelname:<5} {record.name}: {record.getMessage()}"
        ids = [f"{key}={getattr(record, key)}" for key in _CONSOLE_IDS if getattr(record, key, None)]
        if ids:
            line += "  " + " ".join(ids)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


def build_handler(log_format: str, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if log_format == "json" else ConsoleFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(SecretFilter())
    handler.set_name("aegra")
    return handler


def configure_logging(log_format: str, level: str, stream: IO[str] | None = None) -> logging.Handler:
    """Install the aegra handler on the root logger (replacing one installed before) and route uvicorn's
    loggers and Python warnings through it. Returns the handler."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "aegra"]:
        root.removeHandler(old)
    handler = build_handler(log_format, stream)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)
    # Our middleware writes the access log; uvicorn writes its own only while this logger has a handler.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    logging.captureWarnings(True)
    return handler
