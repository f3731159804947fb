"""The gate every request passes before routing: which part of the server it is for, the protocol's body limits,
and authentication.

- Probes and docs (`/ok`, `/health`, `/info`, `/openapi.json`, ...) are public, and so are GETs of the generative
  UI's bundle files (`/ui/...`), which a page loads by URL.
- Protocol routes (assistants, threads, runs, crons, store, the thread protocol's HTTP and WebSocket routes)
  have their request bodies bounded: larger than `max_body_bytes` is a 413, JSON nested deeper than
  `max_json_depth` a 422 (deep nesting would otherwise end in a RecursionError somewhere, i.e. a 500). Then,
  with `auth.path` set, the authenticate handler decides; a refusal is answered here, before any route runs.
- Custom routes (`http.app`) pass untouched, unless `http.enable_custom_route_auth` puts them behind the same
  authenticate. Their bodies are theirs: no limit, no JSON rewriting.

The user is left in the scope (`scope["aegra.user"]`, and `scope["user"]` / `scope["auth"]` as Starlette's
AuthenticationMiddleware would, so custom routes can read `request.user`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from starlette.authentication import AuthCredentials
from starlette.requests import HTTPConnection, Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aegra_server.api.http import JSONResponse
from aegra_server.auth import SCOPE_USER, AuthFailure, AuthSetup

SCOPE_ROUTE = "aegra.route"  # "public", "protocol" or "custom"
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_INTEGER = re.compile(rb"(?<![0-9.eE+-])-?[0-9]{19,}(?![0-9.eE])")
_KEYED_INTEGER = re.compile(rb'"((?:[^"\\]|\\.){1,100})"\s*:\s*(-?[0-9]{19,})(?![0-9.eE])')
INT64 = (-(2**63), 2**63 - 1)


def json_too_deep(body: bytes, limit: int) -> bool:
    """Whether a JSON text nests arrays/objects deeper than `limit`, without parsing it.

    Fast path: a text with at most `limit` opening brackets cannot be deeper. Otherwise strings are blanked out
    (brackets inside them do not count) and the remaining brackets counted.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for char in _STRING.sub(b'""', body).translate(None, _NOT_BRACKETS):
        if char in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _out_of_range(token: bytes) -> bool:
    return not INT64[0] <= int(token) <= INT64[1]


def json_integer_out_of_range(body: bytes) -> str | None:
    """A message when a JSON text holds an integer no 64-bit column or encoder can take (the JSON encoder
    fails on it, SQLite cannot bind it), naming its key when it has one; else None. Fast path: without a run of
    19 digits there is no such integer."""
    if _LONG_DIGITS.search(body) is None:
        return None
    numbers = _STRING.sub(b'""', body)
    if not any(_out_of_range(token) for token in _INTEGER.findall(numbers)):
        return None
    for key, token in _KEYED_INTEGER.findall(body):
        if _out_of_range(token):
            name = key.decode("utf-8", errors="replace")
            return f"{name}: the integer {token[:40].decode()} is outside the 64-bit range"
    return "request body holds an integer outside the 64-bit range"


# A \uXXXX escape itself (preceded by an even number of backslashes, so not the text "\\uXXXX").
_UNICODE_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u([0-9a-fA-F]{4})")


def json_unstorable_escape(body: bytes) -> str | None:
    """A message when a JSON text escapes a character no backend can store: NUL (Postgres JSON refuses it) or
    a lone UTF-16 surrogate (not UTF-8 at all: every encoder and driver fails on it); else None."""
    if b"\\u" not in body:
        return None
    escapes = list(_UNICODE_ESCAPE.finditer(body))
    for i, escape in enumerate(escapes):
        code = int(escape.group(1), 16)
        if code == 0:
            return f"{_where_unstorable(body)}holds a NUL character (\\u0000), which cannot be stored"
        if 0xD800 <= code <= 0xDBFF:  # a high surrogate must be followed at once by a low one
            following = escapes[i + 1] if i + 1 < len(escapes) else None
            if following is not None and following.start() == escape.end() and 0xDC00 <= int(following.group(1), 16) <= 0xDFFF:
                continue
        elif 0xDC00 <= code <= 0xDFFF:  # a low surrogate must follow a high one
            before = escapes[i - 1] if i > 0 else None
            if before is not None and before.end() == escape.start() and 0xD800 <= int(before.group(1), 16) <= 0xDBFF:
                continue
        else:
            continue
        return f"{_where_unstorable(body)}holds a lone UTF-16 surrogate (\\u{escape.group(1).decode()}), which is not text"
    return None


def _unstorable(text: str) -> bool:
    return "\x00" in text or any("\ud800" <= char <= "\udfff" for char in text)


def _where_unstorable(body: bytes) -> str:
    """Which key or string holds such a character, e.g. "metadata.title " ("request body " when none can be
    named): Python's own parser takes lone surrogates, so the text can be walked."""

    def walk(value: Any, path: str) -> str | None:
        if isinstance(value, str):
            return path if _unstorable(value) else None
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            if isinstance(key, str) and _unstorable(key):
                return f"a key of {path or 'the body'}"
            found = walk(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
        return None

    try:
        where = walk(json.loads(body), "")
    except (ValueError, RecursionError):
        where = None
    return f"{where or 'request body'} "


class RequestGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: AuthSetup,
        protocol_routes: Sequence[BaseRoute],
        public_paths: Iterable[str],
        public_get_prefix: str | None,
        custom_route: BaseRoute | None,
        custom_route_auth: bool,
        max_body_bytes: int,
        max_json_depth: int,
    ) -> None:
        self.app = app
        self.auth = auth
        self.protocol_routes = list(protocol_routes)
        self.public_paths = frozenset(public_paths)
        self.public_get_prefix = public_get_prefix
        self.custom_route = custom_route
        self.custom_route_auth = custom_route_auth
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    def _classify(self, scope: Scope) -> tuple[str, dict[str, Any] | None]:
        """("protocol" or "custom", the protocol route's path parameters), deciding as the router will: a full
        match wins over a partial one (same path, other method), and among partial ones the protocol's."""
        partial = None
        for route in self.protocol_routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                return "protocol", child.get("path_params", {})
            if match is Match.PARTIAL and partial is None:
                partial = child.get("path_params", {})
        if self.custom_route is not None and self.custom_route.matches(scope)[0] is Match.FULL:
            return "custom", None
        if partial is not None:
            return "protocol", partial
        # No route at all: a 404 either way; it is authenticated like the protocol unless custom routes exist.
        return ("custom" if self.custom_route is not None else "protocol"), None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path_params: dict[str, Any] | None = None
        if scope["path"] in self.public_paths or (
            self.public_get_prefix and scope.get("method") == "GET" and scope["path"].startswith(self.public_get_prefix)
        ):
            kind = "public"
        elif self.custom_route is not None or self.auth.wants_path_params:
            kind, path_params = self._classify(scope)
        else:
            kind = "protocol"  # without custom routes, anything that is not a probe is the protocol's (or a 404)
        scope[SCOPE_ROUTE] = kind

        body: bytes | None = None
        if kind == "protocol" and scope["type"] == "http" and scope["method"] in _BODY_METHODS:
            try:
                body = await self._read_body(scope, receive)  # a 413 comes first: nothing more is read
            except AuthFailure as refusal:
                await self._refuse(scope, receive, send, refusal)
                return
            receive = _replay(body, receive)

        if self.auth.enabled and (kind == "protocol" or (kind == "custom" and self.custom_route_auth)):
            # `request` for the handler: a Request over HTTP (its body replays what was read), else the connection.
            conn = Request(scope, receive) if scope["type"] == "http" else HTTPConnection(scope)
            parsed = None
            if self.auth.wants_body and body:
                try:
                    parsed = orjson.loads(body)
                except orjson.JSONDecodeError:
                    parsed = None
            try:
                user = await self.auth.authenticate(conn, body=parsed, path_params=path_params)
            except AuthFailure as refusal:
                await self._refuse(scope, receive, send, refusal)
                return
            scope[SCOPE_USER] = user
            scope["user"] = user
            scope["auth"] = AuthCredentials(list(user.permissions))
        if body:
            # After authentication: a stranger learns nothing about what the server accepts but "401".
            problem = self._body_problem(body)
            if problem is not None:
                await self._refuse(scope, receive, send, AuthFailure(422, problem))
                return
        await self.app(scope, receive, send)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            raise AuthFailure(413, f"request body too large: {declared} bytes, at most {self.max_body_bytes} accepted")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise AuthFailure(413, f"request body too large: more than {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _body_problem(self, body: bytes) -> str | None:
        """Why a JSON body would break something further in (a RecursionError, an encoder or driver overflow,
        a value Postgres cannot store), as a message for a 422; None for a body that is fine."""
        if json_too_deep(body, self.max_json_depth):
            return f"request body nests arrays and objects deeper than {self.max_json_depth} levels"
        return json_integer_out_of_range(body) or json_unstorable_escape(body)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, refusal: AuthFailure) -> None:
        if scope["type"] == "websocket":
            # Closing before accepting: the server answers the handshake with 403.
            await send({"type": "websocket.close", "code": 4000 + refusal.status_code, "reason": refusal.detail[:120]})
            return
        response = JSONResponse({"detail": refusal.detail}, status_code=refusal.status_code, headers=refusal.headers)
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the already-read body once, then passes on (to see the client disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
