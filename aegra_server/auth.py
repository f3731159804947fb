"""Custom auth the `langgraph_sdk.Auth` way: one authenticate handler for every request, then, per resource and
action, the most specific authorization handler.

`auth.path` in aegra.json names an `Auth` instance (`./auth.py:auth` or `package.module:auth`). Auth code written
for LangGraph Platform runs here unchanged:

- `@auth.authenticate` gets what it asks for by parameter name: `request`, `body`, `path`, `method`,
  `path_params`, `query_params`, `headers` (bytes keys and values, as langgraph-api passes them; str keys work
  too) and `authorization` (the Authorization header or None). It returns the user: a string (the identity),
  a dict with `identity` and optionally `permissions`, `display_name`, `is_authenticated` and any extra fields,
  or an object with those attributes. `Auth.exceptions.HTTPException` becomes that status and detail (401 by
  default); an AssertionError a 401; any other error a 500 whose body says nothing about it.
- Authorization handlers are looked up as langgraph-api does: `(resource, action)`, then `(resource, *)`, then
  `(*, action)`, then the global `@auth.on`; with none, the request is allowed. A handler gets
  `ctx=AuthContext(...)` and `value` (the SDK's `Auth.types.on.<resource>.<action>.value`). `None`/`True`
  allow, `False` is a 403, a dict is a metadata filter every read, search, count, update and delete of that
  resource applies (a resource it hides is a 404, like a missing one). Changes a handler makes to
  `value["metadata"]` on create are stored; store handlers may rewrite `value["namespace"]`.
- The user reaches graphs as `config["configurable"]["langgraph_auth_user"]` (with `langgraph_auth_user_id` and
  `langgraph_auth_permissions`) and, through LangGraph's runtime, as `runtime.server_info.user`.

Studio: langgraph-api lets a request with `x-auth-scheme: langsmith` skip `authenticate` as the Studio user
unless `auth.disable_studio_auth` is set; it can, because LangSmith vouches for that request. Nothing vouches
for it here, so Aegra honours the header only under `aegra dev` (where the server listens on localhost for its
developer) and never under `aegra serve`. The handlers still run, with `ctx.user` a `StudioUser`.

Without `auth.path` every request is allowed, and graphs see `langgraph_auth_user` None (user id "", no
permissions), as langgraph-api gives them.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends
from langgraph_sdk import Auth
from langgraph_sdk.auth.types import AuthContext, StudioUser
from starlette.requests import HTTPConnection

from aegra_server.config import AegraConfig
from aegra_server.errors import ConfigError

log = logging.getLogger("aegra.auth")

# What an authenticate handler may ask for, by parameter name (the SDK's documented list).
AUTHENTICATE_PARAMETERS = ("request", "body", "path", "method", "path_params", "query_params", "headers", "authorization")
STUDIO_IDENTITY = "langgraph-studio-user"
FILTER_OPERATORS = ("$eq", "$contains")
# The scope key under which the gate leaves the request's user (Starlette's `scope["user"]` is set too, so
# custom routes can read `request.user`).
SCOPE_USER = "aegra.user"


class AuthFailure(Exception):
    """A request refused by authentication, authorization or the gate's limits: the status, detail and headers
    to answer with (always `{"detail": ...}`)."""

    def __init__(self, status_code: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers or {})


class AuthUser(dict):
    """The authenticated user: a plain dict (so it serialises and persists with a run) that also answers
    `user.identity`, `user.permissions`, `user.display_name` and `user.is_authenticated`, which makes it a
    `langgraph_sdk.auth.types.BaseUser` for handlers and for LangGraph's `runtime.server_info.user`."""

    __slots__ = ()

    @property
    def identity(self) -> str:
        return self["identity"]

    @property
    def display_name(self) -> str:
        return self.get("display_name") or self["identity"]

    @property
    def is_authenticated(self) -> bool:
        return bool(self.get("is_authenticated", True))

    @property
    def permissions(self) -> Sequence[str]:
        return list(self.get("permissions") or [])

    def model_dump(self) -> dict[str, Any]:
        return dict(self)

    def __getattr__(self, name: str) -> Any:
        # Extra fields the handler returned read as attributes too, like langgraph-api's ProxyUser.
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def studio_user() -> AuthUser:
    return AuthUser(
        identity=STUDIO_IDENTITY,
        display_name=STUDIO_IDENTITY,
        is_authenticated=True,
        permissions=["authenticated"],
        kind="StudioUser",
    )


def as_user(value: Any) -> AuthUser:
    """Normalise what an authenticate handler returned. TypeError for something that is no user."""
    if isinstance(value, AuthUser):
        return value
    if isinstance(value, str):
        if not value:
            raise TypeError("the identity is an empty string")
        return AuthUser(identity=value, display_name=value, is_authenticated=True, permissions=[])
    if isinstance(value, Mapping):
        data = dict(value)
    elif hasattr(value, "identity"):
        data = {}
        dump = getattr(value, "model_dump", None) or getattr(value, "dict", None)
        if callable(dump):
            try:
                dumped = dump()
                if isinstance(dumped, Mapping):
                    data.update(dumped)
            except Exception:  # noqa: BLE001 - a user object's own serialiser; its attributes still count
                pass
        for name in ("identity", "display_name", "is_authenticated", "permissions"):
            if hasattr(value, name):
                data[name] = getattr(value, name)
    else:
        raise TypeError(f"expected a string, a dict with 'identity' or a user object, got {type(value).__name__}")
    identity = data.get("identity")
    if not isinstance(identity, str) or not identity:
        raise TypeError("the user has no string 'identity'")
    permissions = data.get("permissions") or []
    if isinstance(permissions, str) or not isinstance(permissions, Iterable):
        raise TypeError("'permissions' must be a list of strings")
    data["permissions"] = [str(p) for p in permissions]
    data.setdefault("display_name", identity)
    data["is_authenticated"] = bool(data.get("is_authenticated", True))
    return AuthUser(data)


class Headers(dict):
    """Request headers as langgraph-api hands them to `authenticate`: lower-case bytes keys, bytes values.
    Looking a header up by str works too (`headers.get("x-api-key")`), as the docs' examples do."""

    __slots__ = ()

    @staticmethod
    def _key(key: Any) -> Any:
        return key.lower().encode("latin-1") if isinstance(key, str) else key

    def __getitem__(self, key: Any) -> bytes:
        return super().__getitem__(self._key(key))

    def __contains__(self, key: object) -> bool:
        return super().__contains__(self._key(key))

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get(self._key(key), default)


def _check_authenticate_signature(fn: Any) -> list[str]:
    """The parameters the handler wants; ConfigError for one we cannot give (the server refuses to start)."""
    signature = inspect.signature(fn)
    wanted = []
    for name, parameter in signature.parameters.items():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if name not in AUTHENTICATE_PARAMETERS:
            if parameter.default is not inspect.Parameter.empty:
                continue
            raise ConfigError(
                f"auth.path: the authenticate handler {getattr(fn, '__name__', fn)!r} asks for {name!r}, "
                "which the server does not pass",
                f"it may take any of: {', '.join(AUTHENTICATE_PARAMETERS)}",
            )
        wanted.append(name)
    return wanted


def load_auth(config: AegraConfig) -> Auth | None:
    """The `Auth` that `auth.path` names, or None without one. ConfigError when it cannot be loaded."""
    if config.auth is None or not config.auth.path:
        return None
    from aegra_server.graphs import load_object

    auth = load_object(config, config.auth.path, "auth.path")
    if not isinstance(auth, Auth):
        raise ConfigError(
            f"auth.path {config.auth.path!r} is a {type(auth).__name__}, not a langgraph_sdk.Auth",
            "point it at an instance: `auth = Auth()` in that module, then `./auth.py:auth`",
        )
    if auth._authenticate_handler is not None:
        _check_authenticate_signature(auth._authenticate_handler)
    return auth


# ---- filters -----------------------------------------------------------------------------------------------


def check_filter(result: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A handler's filter, validated (an unsupported operator is the auth module's bug: a 500, logged)."""
    checked: dict[str, Any] = {}
    for key, condition in result.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{where}: filter keys must be non-empty strings, got {key!r}")
        if isinstance(condition, Mapping):
            if len(condition) != 1 or next(iter(condition)) not in FILTER_OPERATORS:
                raise TypeError(f"{where}: filter {key!r} must be a value, {{'$eq': v}} or {{'$contains': v}}")
            condition = dict(condition)
        checked[key] = condition
    return checked


# ---- the server's auth -------------------------------------------------------------------------------------


@dataclass
class AuthSetup:
    """Auth as configured for one server: the handlers and the Studio rule."""

    auth: Auth | None = None
    studio_bypass: bool = False
    _authenticate_params: list[str] = field(default_factory=list)
    _handlers: dict[tuple[str, str], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.auth is not None and self.auth._authenticate_handler is not None:
            self._authenticate_params = _check_authenticate_signature(self.auth._authenticate_handler)

    @classmethod
    def from_config(cls, config: AegraConfig, *, dev_mode: bool) -> AuthSetup:
        auth = load_auth(config)
        bypass = auth is not None and dev_mode and not (config.auth and config.auth.disable_studio_auth)
        return cls(auth, studio_bypass=bypass)

    @property
    def enabled(self) -> bool:
        return self.auth is not None

    @property
    def authenticates(self) -> bool:
        return self.auth is not None and self.auth._authenticate_handler is not None

    @property
    def wants_body(self) -> bool:
        return "body" in self._authenticate_params

    @property
    def wants_path_params(self) -> bool:
        return "path_params" in self._authenticate_params

    # -- authentication

    async def authenticate(self, conn: HTTPConnection, body: Any = None, path_params: dict | None = None) -> AuthUser:
        """The user making this request; AuthFailure when the handler refuses it."""
        if self.studio_bypass and conn.headers.get("x-auth-scheme", "").lower() == "langsmith":
            return studio_user()
        if not self.authenticates:
            # An Auth with only authorization handlers: everyone is the same anonymous, authenticated caller.
            return AuthUser(identity="anonymous", display_name="anonymous", is_authenticated=False, permissions=[])
        assert self.auth is not None
        available = {
            "request": lambda: conn,
            "body": lambda: body,
            "path": lambda: conn.url.path,
            "method": lambda: conn.scope.get("method", "GET"),
            "path_params": lambda: dict(path_params or {}),
            "query_params": lambda: dict(conn.query_params),
            "headers": lambda: Headers((k.lower(), v) for k, v in conn.scope["headers"]),
            "authorization": lambda: conn.headers.get("authorization"),
        }
        kwargs = {name: available[name]() for name in self._authenticate_params}
        try:
            result = await self.auth._authenticate_handler(**kwargs)
        except Auth.exceptions.HTTPException as exc:
            raise AuthFailure(exc.status_code, str(exc.detail), exc.headers) from None
        except AssertionError as exc:
            raise AuthFailure(401, str(exc) or "Unauthorized") from None
        except Exception:
            log.exception("the authenticate handler failed on %s %s", available["method"](), conn.url.path)
            raise AuthFailure(500, "Internal server error") from None
        if result is None:
            raise AuthFailure(401, "Unauthorized")
        try:
            return as_user(result)
        except TypeError as exc:
            log.error("the authenticate handler returned no valid user: %s", exc)
            raise AuthFailure(500, "Internal server error") from None

    # -- authorization

    def handler(self, resource: str, action: str) -> Any:
        """The most specific handler for (resource, action), or None."""
        key = (resource, action)
        if key not in self._handlers:
            found = None
            if self.auth is not None:
                for candidate in (key, (resource, "*"), ("*", action)):
                    handlers = self.auth._handlers.get(candidate)
                    if handlers:
                        found = handlers[-1]
                        break
                else:
                    if self.auth._global_handlers:
                        found = self.auth._global_handlers[-1]
            self._handlers[key] = found
        return self._handlers[key]

    async def authorize(self, user: AuthUser, resource: str, action: str, value: dict[str, Any]) -> dict[str, Any] | None:
        """Run the handler for (resource, action) on `value` (which it may change); the filter it returned,
        or None for no restriction. AuthFailure(403) when it refuses."""
        handler = self.handler(resource, action)
        if handler is None:
            return None
        ctx_user: Any = StudioUser(user.identity, is_authenticated=True) if user.get("kind") == "StudioUser" else user
        ctx = AuthContext(permissions=user.permissions, user=ctx_user, resource=resource, action=action)
        where = f"auth handler for {resource}.{action}"
        try:
            result = await handler(ctx=ctx, value=value)
        except Auth.exceptions.HTTPException as exc:
            raise AuthFailure(exc.status_code, str(exc.detail), exc.headers) from None
        except AssertionError as exc:
            raise AuthFailure(403, str(exc) or "Forbidden") from None
        except Exception:
            log.exception("the %s failed", where)
            raise AuthFailure(500, "Internal server error") from None
        if result is None or result is True:
            return None
        if result is False:
            raise AuthFailure(403, "Forbidden")
        if isinstance(result, Mapping):
            try:
                return check_filter(result, where) or None
            except TypeError as exc:
                log.error("%s", exc)
                raise AuthFailure(500, "Internal server error") from None
        log.error("the %s returned %r; expected None, a bool or a filter dict", where, type(result).__name__)
        raise AuthFailure(500, "Internal server error")


NO_AUTH = AuthSetup()


@dataclass
class RequestAuth:
    """Auth bound to one request: its user, and `check` for the endpoint's resource and action."""

    setup: AuthSetup
    user: AuthUser | None

    @property
    def enabled(self) -> bool:
        return self.setup.enabled and self.user is not None

    async def check(self, resource: str, action: str, value: dict[str, Any]) -> dict[str, Any] | None:
        """The filter for this resource and action (None: unrestricted); AuthFailure when refused."""
        if not self.enabled:
            return None
        assert self.user is not None
        return await self.setup.authorize(self.user, resource, action, value)

    def run_context(self) -> dict[str, Any] | None:
        """What a run created by this request carries to its graph (persisted with the run)."""
        if not self.enabled:
            return None
        assert self.user is not None
        return {"user": dict(self.user), "permissions": list(self.user.permissions)}


def search_value(query: Mapping[str, Any]) -> dict[str, Any]:
    """A search's value for its handler: the query, with `metadata` always a dict, so handlers written the
    documented way (`value.setdefault("metadata", {})[...] = ...`) work on every action."""
    return {**query, "metadata": dict(query.get("metadata") or {})}


def graph_configurable(run_context: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `configurable` entries langgraph-api gives a run: the authenticated user, or none (what it gives
    without auth), in place of whatever the client's config said."""
    if not run_context:
        return {"langgraph_auth_user": None, "langgraph_auth_user_id": "", "langgraph_auth_permissions": []}
    user = AuthUser(run_context["user"])
    return {
        "langgraph_auth_user": user,
        "langgraph_auth_user_id": user.identity,
        "langgraph_auth_permissions": list(run_context.get("permissions") or user.permissions),
    }


def request_auth(conn: HTTPConnection) -> RequestAuth:
    setup = getattr(conn.app.state, "auth", None) or NO_AUTH
    return RequestAuth(setup, conn.scope.get(SCOPE_USER))


async def _request_auth(conn: HTTPConnection) -> RequestAuth:
    # async on purpose: FastAPI runs a sync dependency in a worker thread.
    return request_auth(conn)


AuthDep = Annotated[RequestAuth, Depends(_request_auth)]
