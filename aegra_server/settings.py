"""Server settings and the rules every command shares: where the database is and how `.env` is read.

The CLI resolves these once and hands them to the server process through environment variables
(`AEGRA_CONFIG`, `DATABASE_URL`, `AEGRA_ENV_FILE`), the one channel that survives uvicorn's reload
subprocess. `create_app` itself only ever receives a `Settings` object.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from aegra_server.errors import ConfigError, not_utf8
from aegra_server.observability.settings import ObservabilitySettings

DEFAULT_PORT = 2026
DEV_HOST = "127.0.0.1"
SERVE_HOST = "0.0.0.0"


SHUTDOWN_GRACE_SECONDS = 30.0
DEV_SHUTDOWN_GRACE_SECONDS = 3.0


class Settings(BaseSettings):
    """What the server needs to start. Read from the environment; tests construct it directly."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    config_path: Path = Field(alias="AEGRA_CONFIG")
    database_url: str = Field(default="", alias="DATABASE_URL")
    # How many server processes `aegra serve --workers` started on this database. Postgres is always shared
    # safely; SQLite with more than one worker persists run events and signals between the processes.
    workers: int = Field(default=1, ge=1, alias="AEGRA_WORKERS")
    # How many runs one server process executes at once (LangGraph Platform's N_JOBS_PER_WORKER is read too).
    max_concurrent_runs: int = Field(
        default=32, ge=1, validation_alias=AliasChoices("AEGRA_MAX_CONCURRENT_RUNS", "N_JOBS_PER_WORKER")
    )
    # Seconds between SSE heartbeat comments and `/wait` keep-alive newlines while nothing else is sent.
    heartbeat_seconds: float = Field(default=5.0, alias="AEGRA_HEARTBEAT_SECONDS")
    dev_mode: bool = Field(default=False, alias="AEGRA_DEV")
    # A run's owner renews its claim this often (a third of it); another process resumes the run once the
    # claim has gone unrenewed this long (the owner died, or could not reach the database: then it stops the run).
    run_lease_seconds: float = Field(default=30.0, gt=0, alias="AEGRA_RUN_LEASE_SECONDS")
    # A run whose process stopped under it (a crash, an out-of-memory kill, a shutdown that handed it back) is
    # resumed; past this many attempts it ends in error instead of being resumed forever.
    run_max_attempts: int = Field(
        default=3, ge=1, validation_alias=AliasChoices("AEGRA_RUN_MAX_ATTEMPTS", "BG_JOB_MAX_RETRIES")
    )
    # The most connections one server process opens to Postgres, its pools and signalling together (at least 6).
    # Unset: its share of what the Postgres server allows (max_connections), split among the workers.
    postgres_connections: int | None = Field(default=None, ge=6, alias="AEGRA_POSTGRES_CONNECTIONS")
    # How often threads whose `ttl` has passed, and stored run events past their retention, are deleted.
    thread_sweep_seconds: float = Field(default=60.0, gt=0, alias="AEGRA_THREAD_SWEEP_SECONDS")
    # How long a thread's runs' streamed events stay in the database once it is idle (where processes share one:
    # Postgres, SQLite workers), for joins, reconnects and thread streams on any process; the runs and the
    # thread's state stay. Every token of every run is an event: kept forever, they would outgrow the checkpoints.
    run_events_retention_seconds: float = Field(
        default=86400.0, gt=0, alias="AEGRA_RUN_EVENTS_RETENTION_SECONDS"
    )
    # A run still executing after this long is stopped and ends as `timeout` (its thread: `error`). LangGraph
    # Platform's variable, BG_JOB_TIMEOUT_SECS, is read too, so a deployment's setting carries over.
    run_timeout_seconds: float = Field(
        default=86400.0, gt=0, validation_alias=AliasChoices("AEGRA_RUN_TIMEOUT_SECONDS", "BG_JOB_TIMEOUT_SECS")
    )
    # On shutdown (SIGTERM), how long running runs may finish before they are handed back to be resumed. Unset:
    # 30 s, but under `aegra dev` 3 s, since every reload is a shutdown and a run resumes after it anyway.
    shutdown_grace: float | None = Field(default=None, ge=0, alias="AEGRA_SHUTDOWN_GRACE_SECONDS")
    # Protocol request bodies larger than this are refused with 413 (custom routes set their own limits).
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0, alias="AEGRA_MAX_BODY_BYTES")
    # JSON nested deeper than this is refused with 422, before anything parses it.
    max_json_depth: int = Field(default=100, ge=8, le=200, alias="AEGRA_MAX_JSON_DEPTH")
    # Logging, tracing and metrics (LOG_*, OTEL_*, LANGFUSE_*, PHOENIX_*, ENABLE_METRICS).
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)

    @property
    def shutdown_grace_seconds(self) -> float:
        if self.shutdown_grace is not None:
            return self.shutdown_grace
        return DEV_SHUTDOWN_GRACE_SECONDS if self.dev_mode else SHUTDOWN_GRACE_SECONDS

    def resolved_database_url(self) -> str:
        return self.database_url or default_database_url(self.config_path.resolve().parent)


def settings_from_env() -> Settings:
    """Settings from the environment; a bad value is a ConfigError naming the variable, not a traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{error['loc'][-1] if error['loc'] else 'settings'}: {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise ConfigError(f"invalid server setting: {problems}", "fix it in the environment or in .env") from None


def default_database_url(project_dir: Path) -> str:
    return f"sqlite:///{project_dir / '.aegra' / 'aegra.db'}"


def read_env_file(path: Path | None) -> dict[str, str]:
    """Values of a `.env` file (empty when there is none)."""
    if path is None or not path.is_file():
        return {}
    try:
        values = dotenv_values(path, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise not_utf8(path, exc) from None
    return {k: v for k, v in values.items() if v is not None}


def apply_env_file(path: Path | None) -> None:
    """Put a `.env` file's values into os.environ; the real environment wins over the file."""
    for key, value in read_env_file(path).items():
        os.environ.setdefault(key, value)


def resolve_database_url(
    flag: str | None, environ: Mapping[str, str], project_dir: Path
) -> str:
    """The one rule: --database-url > DATABASE_URL > POSTGRES_* parts > SQLite in <project>/.aegra/."""
    if flag:
        return flag
    if environ.get("DATABASE_URL"):
        return environ["DATABASE_URL"]
    if environ.get("POSTGRES_HOST") or environ.get("POSTGRES_DB"):
        user = quote(environ.get("POSTGRES_USER", "postgres"), safe="")
        password = environ.get("POSTGRES_PASSWORD")
        auth = f"{user}:{quote(password, safe='')}" if password else user
        host = environ.get("POSTGRES_HOST", "localhost")
        port = environ.get("POSTGRES_PORT", "5432")
        db = environ.get("POSTGRES_DB", "postgres")
        return f"postgresql://{auth}@{host}:{port}/{db}"
    return default_database_url(project_dir)


def redact_url(url: str) -> str:
    """A database URL fit for logs and messages: the password replaced by ***."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url
