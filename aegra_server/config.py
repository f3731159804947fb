"""aegra.json (or langgraph.json): read once into one validated model.

Everything langgraph.json accepts is accepted, so an existing LangGraph project runs unchanged; keys that only
matter to LangGraph's image builder are kept but unused. Unknown keys are errors with a "did you mean".
Relative paths resolve from the folder of the config file.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aegra_server.errors import ConfigError, not_utf8

CONFIG_NAMES = ("aegra.json", "langgraph.json")

# Keys langgraph.json defines for its Docker image builder and deployment service. We accept them so a
# LangGraph project's config loads as it is; they have no effect here.
_BUILDER_KEYS = {
    "python_version", "node_version", "pip_config_file", "pip_installer", "dockerfile_lines", "base_image",
    "image_distro", "keep_pkg_tools", "api_version", "$schema",
}
# Keys of langgraph.json whose promise Aegra cannot keep: ignoring them would quietly break it (data thought
# encrypted stored in plain), so they are errors with the reason.
_UNSUPPORTED_KEYS = {
    "encryption": "custom encryption at rest is not supported: remove the key, and encrypt the database's disk "
    "or use Postgres' own encryption",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuthConfig(_Strict):
    path: str | None = None
    disable_studio_auth: bool = False
    openapi: dict[str, Any] | None = None
    cache: dict[str, Any] | None = None


class CorsConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    allow_origins: list[str] = Field(default_factory=lambda: ["*"])
    allow_methods: list[str] = Field(default_factory=lambda: ["*"])
    allow_headers: list[str] = Field(default_factory=lambda: ["*"])
    allow_credentials: bool = False
    allow_origin_regex: str | None = None
    expose_headers: list[str] = Field(default_factory=list)
    max_age: int = 600


class HttpConfig(_Strict):
    app: str | None = None
    cors: CorsConfig | None = None
    enable_custom_route_auth: bool = False
    disable_assistants: bool = False
    disable_threads: bool = False
    disable_runs: bool = False
    disable_store: bool = False
    disable_meta: bool = False
    disable_ui: bool = False
    disable_mcp: bool = False
    disable_a2a: bool = False
    disable_webhooks: bool = False
    configurable_headers: dict[str, Any] | None = None
    logging_headers: dict[str, Any] | None = None
    middleware_order: str | None = None
    mount_prefix: str | None = None


class IndexConfig(_Strict):
    """`store.index`: semantic search over store items (see aegra_server/store_index.py)."""

    dims: int = Field(gt=0)
    # "provider:model" (e.g. "openai:text-embedding-3-small"), "./file.py:attr" or "package.module:attr".
    embed: str
    # JSON paths of the value to embed; ["$"] (the whole value) when not given.
    fields: list[str] | None = None

    @field_validator("embed")
    @classmethod
    def _names_a_target(cls, value: str) -> str:
        if ":" not in value:
            raise ValueError(
                f"{value!r} must be 'provider:model' (e.g. 'openai:text-embedding-3-small') "
                "or a file or module and an attribute (e.g. './embeddings.py:embed')"
            )
        return value


class TTLConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    refresh_on_read: bool = True
    default_ttl: float | None = None
    sweep_interval_minutes: int | None = None
    strategy: str | None = None


class StoreTTLConfig(TTLConfig):
    """`store.ttl`: minutes, as langgraph-api. The sweep interval may be fractional (tests use seconds)."""

    default_ttl: float | None = Field(default=None, gt=0)
    sweep_interval_minutes: float | None = Field(default=None, gt=0)


class StoreConfig(_Strict):
    index: IndexConfig | None = None
    ttl: StoreTTLConfig | None = None


class UiConfig(_Strict):
    """`ui_config`: packages the components import that the page already has (not bundled with them)."""

    shared: list[str] = Field(default_factory=list)


class WebhookUrlPolicy(_Strict):
    """`webhooks.url`: which URLs runs may name as their webhook (aegra_server/runs/webhook_policy.py applies it).
    Defaults are langgraph-api's for a written policy; with none written, http is allowed and URLs may be 4096
    characters long. Loopback targets are refused unless `disable_loopback` is false; link-local and cloud
    metadata addresses always are."""

    require_https: bool = True
    allowed_domains: list[str] = Field(default_factory=list)  # "hooks.example.com" or "*.example.com" (subdomains)
    allowed_ports: list[int] = Field(default_factory=list)  # empty: any
    max_url_length: int = Field(default=2048, gt=0)
    disable_loopback: bool = True
    disable_private_ips: bool = False

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        for domain in value:
            if not domain or ("*" in domain and not (domain.startswith("*.") and "*" not in domain[2:])):
                raise ValueError(f"{domain!r}: a host, or '*.' followed by a domain")
        return [domain.lower() for domain in value]


# What a webhook's body holds; `webhooks.allowed_fields` may keep only some of them.
WebhookField = Literal[
    "run_id", "thread_id", "assistant_id", "created_at", "updated_at", "metadata", "kwargs", "multitask_strategy",
    "status", "run_started_at", "run_ended_at", "webhook_sent_at", "values", "error",
]
_HEADER_TEMPLATE = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


class WebhooksConfig(_Strict):
    """`webhooks` (langgraph.json's key): the URL policy, headers sent with every webhook, and the body's fields."""

    env_prefix: str = "LG_WEBHOOK_"
    url: WebhookUrlPolicy | None = None
    # Values may hold "${{ env.NAME }}", NAME starting with env_prefix: read from the environment at start.
    headers: dict[str, str] = Field(default_factory=dict)
    allowed_fields: list[WebhookField] | None = None

    @model_validator(mode="after")
    def _templates(self) -> WebhooksConfig:
        for value in self.headers.values():
            for expression in _HEADER_TEMPLATE.findall(value):
                self._variable(expression)
        return self

    def _variable(self, expression: str) -> str:
        name = expression.removeprefix("env.")
        if name == expression or not name or "." in name:
            raise ValueError(f"headers: {expression!r} must be env.NAME, e.g. env.{self.env_prefix}TOKEN")
        if not name.startswith(self.env_prefix):
            raise ValueError(f"headers: {name!r} must start with env_prefix {self.env_prefix!r}")
        return name

    @property
    def policy(self) -> WebhookUrlPolicy:
        return self.url or WebhookUrlPolicy(require_https=False, max_url_length=4096)

    def rendered_headers(self, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
        """The headers with their templates filled in, or a ConfigError naming the variable that is not set."""

        def value_of(match: re.Match[str]) -> str:
            name = self._variable(match.group(1))
            if name not in environ:
                raise ConfigError(
                    f"webhooks.headers uses the environment variable {name}, which is not set",
                    f"set {name} (in .env or the environment), or remove that header",
                )
            return environ[name]

        return {key: _HEADER_TEMPLATE.sub(value_of, value) for key, value in self.headers.items()}


class CheckpointerConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    ttl: TTLConfig | None = None


class GraphSpec(_Strict):
    """One entry of `graphs`: `./file.py:attr` or `package.module:attr`, optionally with a description."""

    path: str
    description: str | None = None

    @field_validator("path")
    @classmethod
    def _has_attribute(cls, value: str) -> str:
        if ":" not in value:
            raise ValueError(f"{value!r} must name a file or module and an attribute, like './graph.py:graph'")
        return value


class AegraConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    graphs: dict[str, GraphSpec]
    dependencies: list[str] = Field(default_factory=list)
    env: dict[str, str] | str | None = None
    auth: AuthConfig | None = None
    http: HttpConfig | None = None
    store: StoreConfig | None = None
    checkpointer: CheckpointerConfig | None = None
    # Generative UI: graph id → the file (.tsx/.jsx) exporting its components by name (aegra_server/ui_bundles.py).
    ui: dict[str, str] | None = None
    ui_config: UiConfig | None = None
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)

    # Not part of the file: where it was read from, so relative paths can be resolved.
    path: Path = Field(default=Path("aegra.json"), exclude=True)

    @field_validator("graphs", mode="before")
    @classmethod
    def _normalise_graphs(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"path": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("graphs")
    @classmethod
    def _at_least_one(cls, value: dict[str, GraphSpec]) -> dict[str, GraphSpec]:
        if not value:
            raise ValueError("needs at least one graph")
        return value

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        return (self.root / relative).resolve()


def _known_keys() -> set[str]:
    return (set(AegraConfig.model_fields) - {"path"}) | _BUILDER_KEYS


def _reject_unknown_keys(data: dict[str, Any], path: Path) -> None:
    for key in data:
        if key in _UNSUPPORTED_KEYS:
            message, _, hint = _UNSUPPORTED_KEYS[key].partition(": ")
            raise ConfigError(f"{path}: {key}: {message}", hint)
        if key in _known_keys():
            continue
        close = difflib.get_close_matches(key, sorted(_known_keys()), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(AegraConfig.model_fields.keys() - {'path'}))}"
        raise ConfigError(f"{path}: unknown key {key!r}", hint)


def _describe(error: ValidationError, path: Path) -> ConfigError:
    first = error.errors()[0]
    # Pydantic's locations name the union member tried ("dict[str,str]"), and its messages say "Value error, ":
    # neither is the user's vocabulary.
    where = ".".join(str(p) for p in first["loc"] if "[" not in str(p)) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    return ConfigError(f"{path}: {where}: {message}", "fix that entry; see the aegra.json reference in README.md")


def parse_config(data: Any, path: Path) -> AegraConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold a JSON object", 'start from {"graphs": {"agent": "./graph.py:graph"}}')
    _reject_unknown_keys(data, path)
    try:
        return AegraConfig.model_validate({**data, "path": path.resolve()})
    except ValidationError as exc:
        raise _describe(exc, path) from None


def load_config(path: Path) -> AegraConfig:
    """Read and validate one config file."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark, as some editors write, is not an error
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist", "pass --config with an existing aegra.json") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a config file", "pass --config the aegra.json file itself") from None
    except UnicodeDecodeError as exc:
        raise not_utf8(path, exc) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", "check the file's permissions") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", "fix the JSON syntax"
        ) from None
    return parse_config(data, path)


def find_config(start: Path) -> Path | None:
    """The nearest aegra.json (preferred) or langgraph.json in `start` or a folder above it."""
    for folder in (start.resolve(), *start.resolve().parents):
        for name in CONFIG_NAMES:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


