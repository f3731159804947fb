"""`extract` in thread search: named values picked out of each thread by a path, returned as `extracted`.

A path starts at one of a thread's JSON columns and goes down by key (`.name`) and list index (`[i]`, negative
from the end): `values.messages[-1].content`. A path that leads nowhere gives null. The rules (at most ten paths,
aliases that are identifiers and not a thread field's name, the columns a path may start at) are langgraph-api's.
"""

from __future__ import annotations

import re
from typing import Any

MAX_PATHS = 10
COLUMNS = frozenset({"values", "metadata", "config", "interrupts"})
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STEP = re.compile(r"\.([^.\[\]]+)|\[(-?\d+)\]")


def check(extract: dict[str, str] | None, reserved: frozenset[str]) -> dict[str, str] | None:
    """The request's `extract`, or a ValueError saying what is wrong with it (a 422 naming the field); `reserved`
    are the thread's own fields, which no alias may shadow."""
    if not extract:
        return extract
    if len(extract) > MAX_PATHS:
        raise ValueError(f"at most {MAX_PATHS} paths, got {len(extract)}")
    for alias, path in extract.items():
        if not _ALIAS.fullmatch(alias):
            raise ValueError(f"the key {alias!r} must be an identifier (letters, digits, underscores)")
        if alias in reserved:
            raise ValueError(f"the key {alias!r} is a thread field's name")
        if not path or _root(path) not in COLUMNS:
            raise ValueError(f"the path {path!r} must start with one of {', '.join(sorted(COLUMNS))}")
    return extract


def _root(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def value_at(thread: dict[str, Any], path: str) -> Any:
    """What `path` leads to in `thread` (its JSON form), or None."""
    root = _root(path)
    current = thread.get(root)
    position = len(root)
    while position < len(path):
        step = _STEP.match(path, position)
        if step is None:
            return None  # not a path this grammar reads
        key, index = step.groups()
        if key is not None and isinstance(current, dict):
            current = current.get(key)
        elif index is not None and isinstance(current, list) and -len(current) <= int(index) < len(current):
            current = current[int(index)]
        else:
            return None
        position = step.end()
    return current


def extracted(thread: dict[str, Any], extract: dict[str, str]) -> dict[str, Any]:
    return {alias: value_at(thread, path) for alias, path in extract.items()}
