"""What clients see of an exception: langgraph-api's rule for which messages may be shown, passwords hidden."""

from __future__ import annotations

import pytest
from langgraph.errors import GraphRecursionError, InvalidUpdateError

from aegra_server.serde import HIDDEN_MESSAGE, dumps, error_of


@pytest.mark.parametrize(
    "exc",
    [ValueError("bad input"), KeyError("bad input"), GraphRecursionError("bad input"), InvalidUpdateError("bad input"),
     TimeoutError("bad input")],
)
def test_the_usual_errors_show_their_message(exc: Exception) -> None:
    assert error_of(exc) == {"error": type(exc).__name__, "message": str(exc)}


class ProviderError(Exception):
    """What an API client or database driver raises: its message may carry internals."""


@pytest.mark.parametrize("exc", [ProviderError("key sk-live-123 refused"), ConnectionError("db.internal:5432"), OSError("/srv/x")])
def test_other_errors_show_their_type_only(exc: Exception) -> None:
    assert error_of(exc) == {"error": type(exc).__name__, "message": HIDDEN_MESSAGE}
    assert dumps(exc) == dumps(error_of(exc))  # an exception anywhere in a payload follows the same rule


def test_a_shown_message_never_carries_a_password() -> None:
    shown = error_of(ValueError("cannot use postgresql://aegra:hunter2@db/aegra"))["message"]
    assert "hunter2" not in shown and "postgresql://aegra:***@db/aegra" in shown


def test_values_json_lacks_are_encoded_as_langgraph_api_sends_them() -> None:
    """What a graph may put in its state or stream, beyond JSON, reaches clients as langgraph-api sends it:
    bytes as base64 (text or not), decimals as numbers, a Send as {node, args}, queues as lists, addresses,
    paths and time zones by name, patterns as their source."""
    import collections
    import datetime
    import ipaddress
    import pathlib
    import re
    from decimal import Decimal

    import orjson
    from langgraph.types import Send

    value = {
        "text_bytes": b"ab",
        "raw_bytes": bytearray(b"\xff\x00"),
        "fraction": Decimal("1.50"),
        "whole": Decimal("2"),
        "thousand": Decimal("1E+3"),
        "not_a_number": Decimal("NaN"),
        "send": Send("node", {"x": 1}),
        "queue": collections.deque([1, 2]),
        "utc": datetime.timezone.utc,
        "address": ipaddress.ip_address("10.0.0.1"),
        "network": ipaddress.ip_network("10.0.0.0/8"),
        "path": pathlib.PurePosixPath("/srv/data"),
        "pattern": re.compile(r"a+b"),
    }
    assert orjson.loads(dumps(value)) == {
        "text_bytes": "YWI=",
        "raw_bytes": "/wA=",
        "fraction": 1.5,
        "whole": 2,
        "thousand": 1000,
        "not_a_number": None,
        "send": {"node": "node", "args": {"x": 1}},
        "queue": [1, 2],
        "utc": "UTC",
        "address": "10.0.0.1",
        "network": "10.0.0.0/8",
        "path": "/srv/data",
        "pattern": "a+b",
    }


@pytest.mark.parametrize("length", [100, 900, 20_000])
def test_what_dumps_returns_holds_its_own_length_of_memory(length: int) -> None:
    """Runs keep every event they stream (and their threads' logs a copy) for replays: bytes holding more than their
    JSON (orjson's whole working buffer) made a server streaming models' answers grow by gigabytes."""
    import tracemalloc

    payload = [{"content": "x" * length, "type": "AIMessageChunk"}, {"langgraph_node": "agent"}]
    tracemalloc.start()
    try:
        kept = [dumps(payload) for _ in range(100)]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held <= 100 * (len(kept[0]) + 200), held / 100
