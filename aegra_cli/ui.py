"""All terminal output goes through here: one console for results, one for errors and warnings.

Errors and warnings go to stderr so `aegra ... > file` keeps only results. `soft_wrap` keeps paths and URLs on
one line, so they stay copyable and clickable however narrow the terminal is.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn
from rich.prompt import Prompt
from rich.table import Table

# emoji=False: text such as an image reference `name:x:1` must print as is, not with `:x:` turned into an emoji.
out = Console(highlight=False, emoji=False)
err = Console(stderr=True, highlight=False, emoji=False)


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


# One line of `aegra doctor` per check: passed, failed, a warning that does not fail, or not run.
_MARKS = {"ok": "[green]✓[/]", "fail": "[bold red]✗[/]", "warn": "[yellow]![/]", "skip": "[dim]-[/]"}


def check(status: str, name: str, message: str, hint: str | None = None) -> None:
    line = f"{_MARKS[status]} [bold]{escape(name)}[/]: {escape(message)}"
    if hint:
        line += f" [dim]→[/] {escape(hint)}"
    out.print(line, soft_wrap=True)


def interactive() -> bool:
    """Whether questions can be asked: stdin and stdout are both a terminal (not a pipe, CI or a test)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def choose(question: str, choices: list[str], default: str) -> str:
    return Prompt.ask(question, choices=choices, default=default, console=out)


class Activity:
    """Progress of a slow operation, on stderr: a line per step, and a bar per image layer being pulled."""

    _DONE = ("Pull complete", "Already exists", "Download complete")

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._layers: dict[str, TaskID] = {}

    def step(self, message: str) -> None:
        console = self._progress.console if self._progress else err
        console.print(f"[dim]·[/] {escape(message)}", soft_wrap=True)

    def download(self, layer: str, status: str, current: int | None, total: int | None) -> None:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=err, transient=True
            )
            self._progress.start()
        if layer not in self._layers:
            self._layers[layer] = self._progress.add_task(layer, total=None)
        task = self._layers[layer]
        if status in self._DONE:
            self._progress.update(task, description=f"{layer} {status.lower()}", total=1, completed=1)
        else:
            self._progress.update(task, description=f"{layer} {status.lower()}", total=total, completed=current or 0)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@contextmanager
def activity() -> Iterator[Activity]:
    shown = Activity()
    try:
        yield shown
    finally:
        shown.close()
