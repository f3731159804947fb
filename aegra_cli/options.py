"""Options shared by several commands, declared once so every command spells a flag the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aegra_cli.scaffold import Provider

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="aegra.json or langgraph.json to use. Default: $AEGRA_CONFIG, then the nearest one in the "
        "current folder or a folder above it.",
        show_default=False,
    ),
]
DatabaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database to use, e.g. postgresql://user:pass@localhost:5432/aegra. Default: $DATABASE_URL, then "
        "$POSTGRES_*, then SQLite in <project>/.aegra/aegra.db (.env counts as environment).",
        show_default=False,
    ),
]
HostOpt = Annotated[str, typer.Option("--host", help="Interface to listen on.")]
PortOpt = Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="Port to listen on.")]
ProviderOpt = Annotated[
    Provider | None,
    typer.Option(
        "--provider",
        help="Model provider the graph uses once its API key is set; until then (and with `none`) a fake model.",
        show_default=False,
    ),
]
