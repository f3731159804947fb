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
