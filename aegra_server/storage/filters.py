"""Metadata / values filters: "the stored JSON contains this JSON", written once per dialect.

Postgres has containment natively (`@>` on JSONB). SQLite has no such operator, so the filter is flattened into
one comparison per leaf path with json_extract/json_type, which keeps types apart (the string "1" does not
match the number 1, true does not match 1). Paths are bound parameters, never spliced into the SQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, cast, exists, func, literal, select, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import ColumnElement

from aegra_server.serde import dumps_str


class FilterError(ValueError):
    """A filter the server cannot express (reported to the client as 422)."""


def json_contains(column: Any, wanted: dict[str, Any] | None, dialect: str) -> ColumnElement[bool]:
    if not wanted:
        return true()
    if dialect == "postgresql":
        return column.op("@>")(cast(literal(dumps_str(wanted)), JSONB))
    return and_(*_sqlite_leaf_clauses(column, wanted, "$"))


def _path(prefix: str, key: str) -> str:
    if not isinstance(key, str) or '"' in key or "\\" in key:
        raise FilterError(f"filter key {key!r} may not contain quotes or backslashes")
    return f'{prefix}."{key}"'


def _sqlite_leaf_clauses(column: Any, wanted: dict[str, Any], prefix: str) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    for key, value in wanted.items():
        path = _path(prefix, key)
        kind = func.json_type(column, path)
        if isinstance(value, dict):
            clauses.append(kind == "object")
            clauses.extend(_sqlite_leaf_clauses(column, value, path))
        elif isinstance(value, bool):
            clauses.append(kind == ("true" if value else "false"))
        elif value is None:
            clauses.append(kind == "null")
        # The value's comparison before its type's: most rows fail it, and SQLite then skips the second reading
        # of their JSON (a metadata search over 200k threads: 235 → 166 ms).
        elif isinstance(value, (int, float)):
            clauses.append(and_(func.json_extract(column, path) == value, kind.in_(("integer", "real"))))
        elif isinstance(value, str):
            clauses.append(and_(func.json_extract(column, path) == value, kind == "text"))
        elif isinstance(value, list):
            # Containment as on Postgres: every listed element occurs in the stored array.
            clauses.append(kind == "array")
            for element in value:
                each = func.json_each(column, path).table_valued("value", "type")
                clauses.append(exists(select(1).select_from(each).where(
                    each.c.value == (dumps_str(element) if isinstance(element, (dict, list)) else element)
                )))
        else:
            raise FilterError(f"cannot filter on {key!r} with a value of type {type(value).__name__}")
    return clauses


def auth_filter_clause(column: Any, auth_filter: dict[str, Any] | None, dialect: str) -> ColumnElement[bool]:
    """An authorization handler's filter on a metadata column: `{"k": v}` and `{"k": {"$eq": v}}` are equality,
    `{"k": {"$contains": v}}` and `{"k": {"$contains": [v, w]}}` mean the stored list holds every value; all
    keys must match. Written as containment, so both backends share `json_contains`."""
    if not auth_filter:
        return true()
    wanted: dict[str, Any] = {}
    clauses: list[ColumnElement[bool]] = []
    for key, condition in auth_filter.items():
        if isinstance(condition, dict) and "$contains" in condition:
            values = condition["$contains"]
            clauses.append(json_contains(column, {key: list(values) if isinstance(values, (list, tuple)) else [values]}, dialect))
        elif isinstance(condition, dict) and "$eq" in condition:
            wanted[key] = condition["$eq"]
        else:
            wanted[key] = condition
    if wanted:
        clauses.append(json_contains(column, wanted, dialect))
    return and_(*clauses)


def _same(a: Any, b: Any) -> bool:
    # JSON equality: True is not 1, 1 is 1.0.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def matches_filter(metadata: dict[str, Any] | None, auth_filter: dict[str, Any] | None) -> bool:
    """Whether metadata passes a filter, in Python (the storage layer does the same in SQL)."""
    metadata = metadata or {}
    for key, condition in (auth_filter or {}).items():
        if key not in metadata:
            return False
        actual = metadata[key]
        if isinstance(condition, dict) and "$contains" in condition:
            wanted = condition["$contains"]
            wanted = list(wanted) if isinstance(wanted, (list, tuple)) else [wanted]
            if not isinstance(actual, list) or not all(any(_same(w, a) for a in actual) for w in wanted):
                return False
        else:
            expected = condition["$eq"] if isinstance(condition, dict) else condition
            if not _same(actual, expected):
                return False
    return True


def filter_stamp(auth_filter: dict[str, Any] | None) -> dict[str, Any]:
    """The metadata a resource must carry to pass `auth_filter`'s equality conditions; a resource created
    implicitly (a thread made by a run) is stamped with it so that its creator can reach it again."""
    stamp: dict[str, Any] = {}
    for key, condition in (auth_filter or {}).items():
        if isinstance(condition, dict):
            if "$eq" in condition:
                stamp[key] = condition["$eq"]
            elif "$contains" in condition:
                value = condition["$contains"]
                stamp[key] = list(value) if isinstance(value, (list, tuple)) else [value]
        else:
            stamp[key] = condition
    return stamp
