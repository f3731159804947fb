"""All terminal output goes through here: one console for results, one for errors and warnings.

Errors and warnings go to stderr so `aegra ... > file` keeps only results. `soft_wrap` keeps paths and URLs on
one line, so they stay copyable and clickable however narrow the terminal is.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def error(message: str, hint: str | None = None) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        err.print(f"[bold]hint:[/] {escape(hint)}", soft_wrap=True)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def success(message: str) -> None:
    out.print(f"[green]{escape(message)}[/]", soft_wrap=True)


def info(message: str) -> None:
    out.print(escape(message), soft_wrap=True)


def panel(title: str, rows: dict[str, str]) -> None:
    """A titled box of `label  value` lines, e.g. the URLs of a server that is about to start."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in rows.items():
        grid.add_row(label, escape(value))
    out.print(Panel(grid, title=escape(title), title_align="left", expand=False))
