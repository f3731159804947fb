"""The `aegra` command line. Commands only parse, call into plain modules and render."""

from __future__ import annotations

import os
from dataclasses import replace
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from aegra_server.errors import AegraError, UsageError
from aegra_server.settings import DEFAULT_PORT, DEV_HOST, SERVE_HOST, redact_url
from typer.core import TyperGroup

from aegra_cli import database, doctor as checkup, envfile, postgres, scaffold, server, ui
from aegra_cli.docker_postgres import DEFAULT_IMAGE as DEFAULT_POSTGRES_IMAGE
from aegra_cli.options import ConfigOpt, DatabaseUrlOpt, HostOpt, PortOpt, ProviderOpt
from aegra_cli.project import Project, resolve_project


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
    context_settings={"help_option_names": ["-h", "--help"]},
    # Locals of a crashed frame can hold database passwords and API keys.
    pretty_exceptions_show_locals=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        ui.info(f"aegra {package_version('aegra')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", "-V", help="Show the installed version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    """Run LangGraph agents on your own server: SQLite for development, Postgres in production."""


def _start(launch: server.Launch) -> None:
    with server.port_claimed(launch.host, launch.port):
        _start_on_claimed_port(launch)


def _start_on_claimed_port(launch: server.Launch) -> None:
    server.check_database(launch)
    server.warm_up(launch)
    server.check_graphs(launch.project)
    server.check_store_embeddings(launch.project)
    schema = database.schema_for_start(launch.project.database_url)
    mode = "development" if launch.dev else "production"
    ui.panel(
        f"Aegra {package_version('aegra')} ({mode})",
        {
            **server.urls(launch.host, launch.port),
            "Config": str(launch.project.config_path),
            "Database": f"{redact_url(launch.project.database_url)} ({schema})",
            **({"Workers": str(launch.workers)} if launch.workers > 1 else {}),
        },
    )
    with server.ui_bundled(launch):
        server.run(launch)


@app.command()
def dev(
    config: ConfigOpt = None,
    host: HostOpt = DEV_HOST,
    port: PortOpt = DEFAULT_PORT,
    database_url: DatabaseUrlOpt = None,
    no_reload: Annotated[bool, typer.Option("--no-reload", help="Do not restart on file changes.")] = False,
    with_postgres: Annotated[
        bool, typer.Option("--postgres", help="Start the project's Postgres in Docker (as `aegra up`) and use it.")
    ] = False,
) -> None:
    """Run the server for development; it restarts when code, aegra.json or .env change.

    Examples: `aegra dev`, `aegra dev --port 2027`, `aegra dev --database-url postgresql://localhost/aegra`
    """
    project = resolve_project(config, database_url)
    if with_postgres:
        project = _with_postgres(project, database_url)
    _start(server.Launch(project, host, port, reload=not no_reload, dev=True))


def _with_postgres(project: Project, explicit_url: str | None) -> Project:
    """`dev --postgres`: the project's Postgres from `aegra up` is the database, unless --database-url names one."""
    if explicit_url:
        ui.warn("--database-url is given, so --postgres starts nothing")
        return project
    with ui.activity() as activity:
        ready = postgres.up_docker(project, environ=os.environ, report=activity)
    ui.info(f"Postgres: {ready.description}")
    return replace(project, database_url=ready.url)


@app.command()
def serve(
    config: ConfigOpt = None,
    host: HostOpt = SERVE_HOST,
    port: PortOpt = DEFAULT_PORT,
    database_url: DatabaseUrlOpt = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", "-w", min=1, help="Server processes (one per core is a good start), on SQLite or Postgres."
        ),
    ] = 1,
) -> None:
    """Run the server for production: all interfaces, no reload.

    Examples: `aegra serve --workers 2`, `DATABASE_URL=postgresql://aegra:secret@db:5432/aegra aegra serve`
    """
    project = resolve_project(config, database_url)
    _start(server.Launch(project, host, port, reload=False, dev=False, workers=workers))


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
    if database.in_memory(project.database_url):
        ui.info(f"{url}: nothing to migrate, the server sets up an in-memory database each time it starts")
        return
    if status:
        current = database.revision(project.database_url)
        ui.info(f"{url}: {f'revision {current}' if current else 'not migrated'}")
        return
    ui.success(f"{url}: at revision {database.migrate(project.database_url)}")


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the new project; it must be empty.")] = Path("."),
    template: Annotated[
        str | None, typer.Option("--template", "-t", help="Template to use (see --list-templates).", show_default=False)
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Project name. Default: the folder's name.", show_default=False)
    ] = None,
    provider: ProviderOpt = None,
    defaults: Annotated[bool, typer.Option("--defaults", help="Ask nothing; use the defaults.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Write into a folder that has files; each file replaced is listed.")
    ] = False,
    list_templates: Annotated[bool, typer.Option("--list-templates", help="List the templates and stop.")] = False,
) -> None:
    """Create a project from a template: a graph, its tests, aegra.json, a Dockerfile and compose.yaml.

    On a terminal it asks what the options leave open. The project runs at once: a fake model until a key is set.

    Examples: `aegra init my-agent`, `aegra init my-agent --template react-agent --provider openai --defaults`
    """
    if list_templates:
        for item in scaffold.list_templates():
            ui.info(f"{item.name:<14}{item.description}")
        return
    interactive = ui.interactive() and not defaults
    if template is None:
        names = [item.name for item in scaffold.list_templates()]
        template = ui.choose("Template", names, scaffold.DEFAULT_TEMPLATE) if interactive else scaffold.DEFAULT_TEMPLATE
    created = scaffold.init(
        directory, scaffold.find_template(template), project_name=name, provider=provider,
        interactive=interactive, force=force, store=scaffold.template_store(),
    )
    ui.success(f"Created {created.answers['project_name']} ({created.template}) in {created.directory}")
    if not created.updatable:
        ui.warn("git is not installed, so `aegra update` will not be able to update this project")
    ui.info(f"Next: cd {created.directory} && aegra dev")


@app.command()
def update(
    directory: Annotated[Path, typer.Argument(help="The project folder.")] = Path("."),
    provider: ProviderOpt = None,
    defaults: Annotated[bool, typer.Option("--defaults", help="Ask nothing; keep the previous answers.")] = False,
) -> None:
    """Bring a project made by `aegra init` up to this aegra's version of its template (copier update).

    Commit the project to git first. Where the template's changes overlap yours, <<<<<<< markers are left.

    Examples: `aegra update`, `aegra update --provider anthropic --defaults`
    """
    updated = scaffold.update(directory, provider=provider, interactive=ui.interactive() and not defaults)
    if not updated.changed:
        ui.success(f"Already up to date (template {updated.new_version})")
        return
    changed = f"{len(updated.changed)} files changed"
    if updated.old_version == updated.new_version:
        ui.success(f"Re-rendered template {updated.new_version} with your answers: {changed}")
    else:
        ui.success(f"Updated from template {updated.old_version} to {updated.new_version}: {changed}")
    for path in updated.conflicts:
        ui.warn(f"{path}: resolve the <<<<<<< conflict markers")
    ui.info("Review the changes with `git diff`, then commit them.")


@app.command()
def doctor(config: ConfigOpt = None, database_url: DatabaseUrlOpt = None) -> None:
    """Check that the project can run: Python, aegra.json, every graph, the database, and Docker.

    One line per check, with a fix for each problem. Exits 1 if a required check fails; Docker only warns.

    Examples: `aegra doctor`, `aegra doctor --database-url postgresql://aegra@localhost:5432/aegra`
    """
    failed = False
    for check in checkup.run_checks(config, database_url):
        ui.check(check.status, check.name, check.message, check.hint)
        failed = failed or check.status == "fail"
    if failed:
        raise typer.Exit(1)


@app.command()
def up(
    config: ConfigOpt = None,
    port: Annotated[
        int | None,
        typer.Option("--port", "-p", min=1, max=65535, show_default=False,
                     help="Port on 127.0.0.1 for Postgres. Default: 5432, or the next free one."),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option("--image", show_default=False,
                     help=f"Postgres image. Default: $AEGRA_POSTGRES_IMAGE, then {DEFAULT_POSTGRES_IMAGE}."),
    ] = None,
    embedded: Annotated[
        bool, typer.Option("--embedded", help="Run Postgres without Docker (needs aegra's `embedded` extra).")
    ] = False,
    write_env: Annotated[
        bool, typer.Option("--write-env", help="Also set DATABASE_URL in the project's .env.")
    ] = False,
) -> None:
    """Start the project's Postgres in Docker (or embedded), migrate it and print its DATABASE_URL.

    Safe to run again: a running Postgres is reused, a stopped one started, the data kept.

    In Docker it listens on 127.0.0.1 only, with a generated password unless POSTGRES_PASSWORD is set.

    Embedded, it keeps its data in .aegra/postgres and listens on a Unix socket there.

    Examples: `aegra up`, `aegra up --port 5433 --write-env`, `aegra up --embedded`
    """
    if embedded and (port is not None or image is not None):
        raise UsageError("--port and --image are for Docker", "leave them out with --embedded: it uses a Unix socket")
    project = resolve_project(config)
    with ui.activity() as activity:
        if embedded:
            ready = postgres.up_embedded(project)
        else:
            ready = postgres.up_docker(project, port=port, image=image, environ=os.environ, report=activity)
    ui.success(f"Postgres is ready: {ready.description}; schema at revision {ready.revision}")
    if write_env:
        envfile.set_value(project.env_file, "DATABASE_URL", ready.url)
        ui.info(f"DATABASE_URL set in {project.env_file}")
        if os.environ.get("DATABASE_URL", ready.url) != ready.url:
            ui.warn("DATABASE_URL in your environment wins over .env; unset it to use this one")
    ui.info(f"DATABASE_URL={ready.url}")


@app.command()
def down(
    config: ConfigOpt = None,
    volumes: Annotated[
        bool, typer.Option("--volumes", help="Also delete the data (the Docker volume, or .aegra/postgres).")
    ] = False,
) -> None:
    """Stop the project's Postgres that `aegra up` started; its data is kept for the next `up` unless --volumes.

    Examples: `aegra down`, `aegra down --volumes`
    """
    project = resolve_project(config)
    done = postgres.down(project, volumes=volumes, environ=os.environ)
    for line in done:
        ui.success(line)
    if not done:
        ui.info("Nothing to stop: no Postgres from `aegra up` runs for this project")


@app.command()
def version() -> None:
    """Show the installed version."""
    _print_version(True)


def main() -> None:
    app(prog_name="aegra")
