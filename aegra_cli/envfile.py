"""Writing one value into a project's `.env`, leaving every other line as the user wrote it.

Reading `.env` is `aegra_server.settings.read_env_file` (python-dotenv); this module only edits. It changes the
line(s) that set the key, or appends one, so comments, order and other values survive. A file it creates is
readable by its owner only, because the values it writes (a DATABASE_URL) carry passwords.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Written bare: dotenv reads these characters literally; anything else is single-quoted. python-dotenv expands
# `${NAME}` even inside quotes, so a value must not hold one: URLs written here percent-encode `$`.
_BARE = re.compile(r"[\w@:/.%?=&+,~-]*")


def format_line(key: str, value: str) -> str:
    if _BARE.fullmatch(value):
        return f"{key}={value}"
    return "{}='{}'".format(key, value.replace("\\", "\\\\").replace("'", "\\'"))


def set_value(path: Path, key: str, value: str) -> None:
    """Set `key` in the dotenv file at `path`: the first line setting it is replaced (others removed), or one added."""
    assignment = re.compile(rf"\s*(export\s+)?{re.escape(key)}\s*=")
    line = format_line(key, value)
    if not path.exists():
        # O_EXCL + 0600: the file never exists, even briefly, with wider permissions.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as created:
            created.write(line + "\n")
        return
    updated, placed = [], False
    for existing in path.read_text().splitlines():
        if not assignment.match(existing):
            updated.append(existing)
        elif not placed:  # the first assignment becomes ours; later ones (which would win) go
            updated.append(line)
            placed = True
    if not placed:
        updated.append(line)
    path.write_text("\n".join(updated) + "\n")
