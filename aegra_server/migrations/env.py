"""Alembic's entry script: runs the revisions on the connection `aegra_server.migrations` hands it.

Alembic executes this file itself (it is never imported as a module). At runtime the caller has already
connected, taken the migration lock and opened the transaction, and passes the connection in
`config.attributes["connection"]`. Only when a developer runs the Alembic CLI directly is there no connection;
then one is made from `sqlalchemy.url` or DATABASE_URL.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import MetaData, create_engine
from sqlalchemy.engine import Connection

from aegra_server.storage.urls import parse_database_url

config = context.config


def _configure(connection: Connection, target_metadata: MetaData | None) -> None:
    comparing = {}
    if target_metadata is not None:  # autogenerate and `alembic check`: items of one dialect compared there only
        from aegra_server.storage.tables import compared_on

        comparing["include_object"] = compared_on(connection.dialect.name)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        **comparing,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def _tables_metadata() -> MetaData:
    """tables.py, which autogenerate and `alembic check` compare against. Upgrades run the frozen revisions
    and never need it, so the runtime path does not import it."""
    from aegra_server.storage.tables import metadata

    return metadata


def _cli_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("Set DATABASE_URL to run the Alembic CLI against a database.")
    return parse_database_url(url).sqlalchemy_sync


def run_offline() -> None:
    """`alembic upgrade --sql`: print the SQL instead of running it."""
    url = _cli_url()
    context.configure(
        url=url,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_cli_url())
    try:
        with engine.connect() as connection:
            _configure(connection, target_metadata=_tables_metadata())
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
