"""The one parser for database URLs, and the driver-specific spellings derived from it.

Users write whatever their other tools accept (`postgres://` from a hosting provider, `postgresql+asyncpg://`
from an older Aegra, a plain `sqlite:///` path). We run one driver per dialect, so every form is normalised
here: SQLAlchemy gets `sqlite+aiosqlite` / `postgresql+psycopg`, and LangGraph's Postgres saver and store
(which call psycopg directly) get a plain libpq `postgresql://` conninfo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from aegra_server.errors import ConfigError
from aegra_server.settings import redact_url

SQLITE_SCHEMES = frozenset({"sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"})
# Other Postgres drivers' spellings are accepted and mapped onto psycopg 3, the only one we ship.
POSTGRES_SCHEMES = frozenset(
    {
        "postgres",
        "postgresql",
        "postgresql+psycopg",
        "postgresql+psycopg2",
        "postgresql+asyncpg",
        "postgresql+psycopg_async",
    }
)
MEMORY = ":memory:"

SUPPORTED_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:///:memory:, "
    "postgresql://user:password@host:5432/dbname (postgres:// and postgresql+psycopg:// work too)"
)

_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


@dataclass(frozen=True, repr=False)
class DatabaseUrl:
    """A parsed database URL. Build it with `parse_database_url`; `repr` never shows the password."""

    dialect: Literal["sqlite", "postgresql"]
    # Everything after `scheme://`: for SQLite `/<path>[?query]`, for Postgres the libpq authority, path, query.
    location: str
    # The file path (relative to the working directory or absolute) or ":memory:"; None for Postgres.
    sqlite_path: str | None = None

    @property
    def sqlalchemy_async(self) -> str:
        """URL for `create_async_engine`."""
        driver = "sqlite+aiosqlite" if self.dialect == "sqlite" else "postgresql+psycopg"
        return f"{driver}://{self.location}"

    @property
    def sqlalchemy_sync(self) -> str:
        """URL for a sync `create_engine` (migrations)."""
        driver = "sqlite" if self.dialect == "sqlite" else "postgresql+psycopg"
        return f"{driver}://{self.location}"

    @property
    def conninfo(self) -> str | None:
        """libpq URL for psycopg and LangGraph's `AsyncPostgresSaver`/`AsyncPostgresStore`; None for SQLite."""
        return f"postgresql://{self.location}" if self.dialect == "postgresql" else None

    @property
    def is_memory(self) -> bool:
        return self.sqlite_path == MEMORY

    @property
    def password(self) -> str | None:
        """The password, if the URL carries one; used to scrub it from driver messages."""
        if self.dialect != "postgresql":
            return None
        authority = self.location.split("/", 1)[0].split("?", 1)[0]
        creds, at, _ = authority.rpartition("@")
        if at and ":" in creds:
            return creds.split(":", 1)[1] or None
        match = re.search(r"[?&]password=([^&]*)", self.location, re.IGNORECASE)
        return (match.group(1) or None) if match else None

    @property
    def redacted(self) -> str:
        """The URL fit for logs and messages: any password replaced by ***."""
        if self.dialect == "sqlite":
            return f"sqlite://{self.location}"
        return _PASSWORD_PARAM.sub(r"\1***", redact_url(f"postgresql://{self.location}"))

    def __repr__(self) -> str:
        return f"DatabaseUrl({self.redacted!r})"


def parse_database_url(url: str) -> DatabaseUrl:
    """Parse and normalise a database URL, or raise ConfigError saying which forms are supported."""
    raw = url.strip()
    scheme, sep, rest = raw.partition("://")
    if not sep:
        raise ConfigError(
            f"'{redact_url(raw)}' is not a database URL (it has no scheme://)",
            hint=f"use one of: {SUPPORTED_FORMS}",
        )
    scheme = scheme.lower()
    if scheme in SQLITE_SCHEMES:
        return _parse_sqlite(raw, rest)
    if scheme in POSTGRES_SCHEMES:
        if not rest:
            raise ConfigError(f"Database URL '{raw}' names no database", hint=f"use one of: {SUPPORTED_FORMS}")
        _check_host_and_port(raw)
        return DatabaseUrl(dialect="postgresql", location=rest)
    raise ConfigError(
        f"Unsupported database URL scheme '{scheme}' in {redact_url(raw)}",
        hint=f"use one of: {SUPPORTED_FORMS}",
    )


def _check_host_and_port(raw: str) -> None:
    """What the drivers would fail on later, with a traceback: a port that is no number, a broken IPv6 host."""
    try:
        urlsplit(raw).port
    except ValueError as exc:
        raise ConfigError(
            f"Database URL {redact_url(raw)} is malformed: {exc}",
            hint="a port is a number up to 65535, an IPv6 host goes in [brackets], and a password's special "
            "characters are percent-encoded (@ as %40, : as %3A, / as %2F)",
        ) from None


def _parse_sqlite(raw: str, rest: str) -> DatabaseUrl:
    # `sqlite://` alone is SQLAlchemy's spelling of an in-memory database.
    if rest == "" or rest.startswith("?"):
        return DatabaseUrl(dialect="sqlite", location=f"/{MEMORY}{rest}", sqlite_path=MEMORY)
    if not rest.startswith("/"):
        raise ConfigError(
            f"SQLite URL '{raw}' has a host part; SQLite URLs have three slashes before the path",
            hint="use sqlite:///relative/path.db or sqlite:////absolute/path.db",
        )
    path = rest[1:].split("?", 1)[0]
    return DatabaseUrl(dialect="sqlite", location=rest, sqlite_path=path or MEMORY)

