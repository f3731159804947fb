"""The `aegra` command line: Typer commands over plain modules (project, server, database, ui)."""
