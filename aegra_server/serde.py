"""JSON for everything that crosses the wire or lands in our JSON columns.

Graph state holds LangChain messages (pydantic models), LangGraph Interrupts and Sends (dataclasses), tuples,
sets, UUIDs and datetimes. orjson handles the common types natively; `_default` turns the rest into the shapes
langgraph-api sends (a message becomes its `model_dump()`, an Interrupt `{id, value}`).
"""

from __future__ import annotations

import dataclasses
import enum
import re
from base64 import b64encode
from collections import deque
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from pathlib import PurePath
from typing import Any
from uuid import UUID

import orjson
from langgraph.errors import EmptyInputError, GraphBubbleUp, InvalidUpdateError, TaskNotFound
from langgraph.types import Send
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from aegra_server.observability.redact import redact

# Dataclasses come to _default: orjson's own rendering would give an Interrupt all its fields.
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS


# Exceptions whose message a client may read, langgraph-api's list: Python's and LangGraph's usual errors say
# what went wrong with the input or the graph. Any other's message (a database driver's, an API client's) may
# carry internals, and reads "An internal error occurred"; the server's log has the whole exception.
_SHOWN_ERRORS = (
    ValueError, TypeError, KeyError, AttributeError, RuntimeError, RecursionError, TimeoutError,
    InvalidUpdateError, GraphBubbleUp, EmptyInputError, TaskNotFound, HTTPException,
)
HIDDEN_MESSAGE = "An internal error occurred"


def error_of(exc: BaseException) -> dict[str, str]:
    """A run's error as clients see it: the exception's type, and its message if it may be shown (no password
    in it either way)."""
    message = redact(str(exc)) if isinstance(exc, _SHOWN_ERRORS) else HIDDEN_MESSAGE
    return {"error": type(exc).__name__, "message": message}


def _interrupt(interrupt: Any) -> dict[str, Any]:
    """`{id, value}`, and `response_schema` only when the interrupt has one, as langgraph-api sends it."""
    data = {"id": interrupt.id, "value": interrupt.value}
    if getattr(interrupt, "response_schema", None) is not None:
        data["response_schema"] = interrupt.response_schema
    return data


def _decimal(value: Decimal) -> int | float:
    """A number, as langgraph-api sends it: an integer when it has no fraction digits, else a float (a client
    reading JSON gets the number it would get from a float in the state)."""
    exponent = value.as_tuple().exponent
    if not value.is_finite() or (isinstance(exponent, int) and exponent < 0):
        return float(value)
    return int(value)


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="python")
    if type(obj).__name__ == "Interrupt":
        return _interrupt(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):
        return obj._asdict()
    if isinstance(obj, Send):
        return {"node": obj.node, "args": obj.arg}
    if isinstance(obj, (set, frozenset, tuple, deque)):
        return list(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, (datetime, date, time)):
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    if isinstance(obj, Decimal):
        return _decimal(obj)
    if isinstance(obj, tzinfo):
        return obj.tzname(None)
    if isinstance(obj, (UUID, PurePath, IPv4Address, IPv6Address, IPv4Network, IPv6Network, IPv4Interface, IPv6Interface)):
        return str(obj)
    if isinstance(obj, re.Pattern):
        return obj.pattern
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (bytes, bytearray)):
        return b64encode(obj).decode()  # any bytes, text or not, as langgraph-api sends them
    if isinstance(obj, BaseException):
        return error_of(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if hasattr(obj, "dict") and callable(obj.dict):
        return obj.dict()
    # Anything else (a function, a client object in state) is shown, not failed on.
    return repr(obj)


def dumps(obj: Any) -> bytes:
    # A copy of orjson's result: that one holds orjson's whole working buffer, 8 to 40 times the JSON's length
    # (4 KB at least), and what is kept (every event of a run and of its thread's log, for replays) would keep it
    # all: a model's 800-token answer held 6.5 MB instead of 0.7 MB. The copy costs a fraction of the encoding.
    return bytes(memoryview(orjson.dumps(obj, default=_default, option=_OPTIONS)))


def dumps_str(obj: Any) -> str:
    return orjson.dumps(obj, default=_default, option=_OPTIONS).decode()  # a str of its own length already


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def jsonable(obj: Any) -> Any:
    """Plain JSON types (dict/list/str/...) for an arbitrary object: what a client would decode."""
    return orjson.loads(dumps(obj))
