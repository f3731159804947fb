"""The `aegra` command line. Commands only parse, call into plain modules and render."""

from __future__ import annotations

from importlib.metadata import version as package_version
from typing import Annotated, Any

import click
import typer
from aegra_server.errors import AegraError
from aegra_server.settings import DEFAULT_PORT, DEV_HOST, SERVE_HOST, redact_url
from typer.core import TyperGroup

from aegra_cli import database, server, ui
from aegra_cli.options import ConfigOpt, DatabaseUrlOpt, HostOpt, PortOpt
from aegra_cli.project import resolve_project


class AegraGroup(TyperGroup):
    """The one place an AegraError becomes `error:` + `hint:` on stderr and an exit code, never a traceback.

    It sits here rather than in `main()` so `CliRunner` tests go through the same translation as the script.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AegraError as exc:
            ui.error(exc.message, exc.hint)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=AegraGroup,
    name="aegra",
    help="Run LangGraph agents on your own server: SQLite for development, Postgres in production.",
    no_args_is_help=True,
    add_completion=False,
    # Locals of a crashed frame can hold database passwords and API keys.
    pretty_exceptions_show_locals=False,
)


def _start(launch: server.Launch) -> None:
    server.ensure_port_free(launch.host, launch.port)
    server.check_graphs(launch.project)
    revision = database.migrate(launch.project.database_url)
    mode = "development" if launch.dev else "production"
    ui.panel(
        f"Aegra {package_version('aegra')} ({mode})",
        {
            **server.urls(launch.host, launch.port),
            "Config": str(launch.project.config_path),
            "Database": f"{redact_url(launch.project.database_url)} (revision {revision})",
        },
    )
    server.run(launch)


@app.command()
def dev(
    config: ConfigOpt = None,
    host: HostOpt = DEV_HOST,
    port: PortOpt = DEFAULT_PORT,
    database_url: DatabaseUrlOpt = None,
    no_reload: Annotated[bool, typer.Option("--no-reload", help="Do not restart on file changes.")] = False,
) -> None:
    """Run the server for development; it restarts when code, aegra.json or .env change.

    Examples: `aegra dev`, `aegra dev --port 2027`, `aegra dev --database-url postgresql://localhost/aegra`
    """
    project = resolve_project(config, database_url)
    _start(server.Launch(project, host, port, reload=not no_reload, dev=True))


@app.command()
def serve(
    config: ConfigOpt = None,
    host: HostOpt = SERVE_HOST,
    port: PortOpt = DEFAULT_PORT,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Run the server for production: all interfaces, no reload.

    Example: `DATABASE_URL=postgresql://aegra:secret@db:5432/aegra aegra serve`
    """
    project = resolve_project(config, database_url)
    _start(server.Launch(project, host, port, reload=False, dev=False))


@app.command()
def migrate(
    config: ConfigOpt = None,
    database_url: DatabaseUrlOpt = None,
    status: Annotated[bool, typer.Option("--status", help="Only show the current revision.")] = False,
) -> None:
    """Bring the database schema up to date. Safe to run again.

    Examples: `aegra migrate`, `aegra migrate --status`
    """
    project = resolve_project(config, database_url)
    url = redact_url(project.database_url)
    if status:
        current = database.revision(project.database_url)
        ui.info(f"{url}: {f'revision {current}' if current else 'not migrated'}")
        return
    ui.success(f"{url}: at revision {database.migrate(project.database_url)}")


@app.command()
def version() -> None:
    """Show the installed version."""
    ui.info(f"aegra {package_version('aegra')}")


def main() -> None:
    app(prog_name="aegra")
