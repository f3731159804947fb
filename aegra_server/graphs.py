"""The graphs named in aegra.json: loading, per-run instances, and the introspection Studio asks for.

`GraphRegistry.load(config)` prepares the import environment (`env`, `dependencies`), imports every graph
once and classifies it: a compiled graph (kept), a `StateGraph` (compiled once), or a factory (a function
called per request with the run's config). Anything that goes wrong becomes one `ConfigError` naming the
graph, the cause and the fix.

Runs get `await registry.graph(...)`: a shallow copy of the compiled graph with the server's checkpointer
and store. The loaded object is never mutated, so concurrent runs cannot see each other's settings.

Schemas, drawings and subgraphs follow langgraph-api's `GET /assistants/{id}/schemas|graph|subgraphs`.
They are computed in a worker thread (pydantic schema generation can take tens of milliseconds for
message-heavy states) and cached per graph for compiled graphs; factories are introspected afresh each time.
"""

from __future__ import annotations

import asyncio
import copy
import difflib
import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import logging
import os
import re
import sys
import traceback
import types
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

from langchain_core.runnables.config import var_child_runnable_config
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from pydantic import TypeAdapter, create_model

from aegra_server.config import AegraConfig, GraphSpec
from aegra_server.errors import ConfigError

logger = logging.getLogger(__name__)

GRAPH_NAMESPACE = UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")

# Keys langgraph-api strips from the configurable schema: they are the server's, not the graph's.
_EXCLUDED_CONFIG_KEYS = ("__pregel_checkpointer", "__pregel_store", "checkpoint_id", "checkpoint_ns", "thread_id")
_DEFAULT_GRAPH_NAME = "LangGraph"
_MISSING = object()


@lru_cache(maxsize=1024)  # asked on every run that names a graph
def default_assistant_id(graph_id: str) -> str:
    """The id of the assistant every graph gets for free, the same one langgraph-api creates."""
    return str(uuid5(GRAPH_NAMESPACE, graph_id))


class NotAnAssistant(ValueError):
    """An assistant_id that is neither an id (a UUID) nor a graph's name: a 422, as langgraph-api answers."""

    def __init__(self, assistant_id: str, graphs: list[str]) -> None:
        super().__init__(
            f"assistant_id {assistant_id!r} is neither an assistant's id (a UUID) nor a graph's name "
            f"(graphs: {', '.join(sorted(graphs))})"
        )


class UnknownGraphError(KeyError):
    """A graph id that is not in aegra.json."""

    def __init__(self, graph_id: str, known: list[str]) -> None:
        super().__init__(graph_id)
        self.graph_id = graph_id
        self.message = f"graph {graph_id!r} not found; expected one of: {', '.join(sorted(known))}"

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class _Entry:
    graph_id: str
    spec: GraphSpec
    graph: Pregel | None  # compiled once at load time, or None for a factory
    factory: Callable[..., Any] | None
    factory_takes_config: bool = False


# ---------------------------------------------------------------------------------------------------------
# Loading


def _add_to_sys_path(folder: Path, *, first: bool = False) -> None:
    entry = str(folder)
    if entry in sys.path:
        return
    if first:
        sys.path.insert(0, entry)
    else:
        sys.path.append(entry)  # after site-packages, as langgraph dev adds them


def _looks_like_path(dependency: str) -> bool:
    return dependency.startswith((".", "/", "~")) or "/" in dependency or os.sep in dependency


def _prepare_dependencies(config: AegraConfig) -> None:
    """Make local `dependencies` importable. Package names (e.g. "langchain_openai") must be installed."""
    for dependency in config.dependencies:
        if not _looks_like_path(dependency):
            continue
        folder = config.resolve(os.path.expanduser(dependency))
        if not folder.is_dir():
            # langgraph dev skips these too; the import that needs it will fail with a clearer message.
            logger.warning("dependency %r (%s) is not a folder; skipped", dependency, folder)
            continue
        _add_to_sys_path(folder)
        src = folder / "src"
        if src.is_dir() and ((folder / "pyproject.toml").is_file() or (folder / "setup.py").is_file()):
            # src layout: the package lives one level down. First on the path, so the code being edited wins over
            # a copy of the same project that `pip install .` (not -e) put in site-packages; src holds only the
            # project's own packages, so nothing else is shadowed.
            _add_to_sys_path(src, first=True)


def _apply_env(config: AegraConfig) -> None:
    """`env` in aegra.json, without overriding the real environment."""
    if isinstance(config.env, dict):
        for key, value in config.env.items():
            os.environ.setdefault(key, str(value))
    elif isinstance(config.env, str):
        path = config.resolve(config.env)
        if not path.is_file():
            raise ConfigError(
                f"env file {path} does not exist",
                f'fix "env" in {config.path.name}: a path relative to {config.root}, or an object of variables',
            )
        from dotenv import load_dotenv

        load_dotenv(path, override=False)


def _module_name_for(path: Path) -> tuple[str, str]:
    """(package, module) names for a graph file: stable across processes, unique per folder.

    The file becomes a submodule of a synthetic package whose `__path__` is the file's folder, so relative
    imports of its siblings (`from .nodes import x`) work, and classes defined in it pickle by reference.
    """
    digest = hashlib.sha1(str(path.parent).encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem)
    if not stem or stem[0].isdigit():
        stem = f"_{stem}"
    return f"_aegra_graphs_{digest}", stem


def _import_file(path: Path) -> types.ModuleType:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    _add_to_sys_path(path.parent)
    package_name, stem = _module_name_for(path)
    module_name = f"{package_name}.{stem}"

    existing = sys.modules.get(module_name)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing  # the same file named by several graphs, or loaded twice in one process

    package = sys.modules.get(package_name)
    if package is None:
        package_spec = importlib.machinery.ModuleSpec(package_name, None, is_package=True)
        package_spec.submodule_search_locations = [str(path.parent)]
        package = importlib.util.module_from_spec(package_spec)
        sys.modules[package_name] = package

    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    setattr(package, stem, module)
    return module


def _raised_at(exc: BaseException, root: Path) -> str:
    """Where an import failed: the innermost frame in the project's own files (else the innermost outside the
    import machinery), as "file, line N" — the line a one-line error must name, since it shows no traceback."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
    own = [f for f in frames if Path(f.filename).resolve().is_relative_to(root.resolve())]
    frame = (own or frames or [None])[-1]
    return f"{frame.filename}, line {frame.lineno}" if frame is not None else "its module"


def _is_file_reference(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def _graph_like_exports(module: types.ModuleType) -> list[str]:
    names = []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (Pregel, StateGraph)) or (
            inspect.isfunction(value) and getattr(value, "__module__", None) == module.__name__
        ):
            names.append(name)
    return names


def _factory_takes_config(name: str, factory: Callable[..., Any]) -> bool:
    """Whether a factory wants the run's config. Raises TypeError for signatures we cannot call."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return True  # builtins and C callables: assume the documented `factory(config)`
    positional = [
        p for p in signature.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    keyword_only = [
        p.name for p in signature.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    ]
    if len(required) > 1 or keyword_only:
        wanted = [p.name for p in required] + keyword_only
        raise TypeError(
            f"factory {name!r} requires {len(wanted)} arguments ({', '.join(wanted)}); "
            "a graph factory takes no argument or one `config` argument"
        )
    has_var_positional = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in signature.parameters.values())
    return bool(positional) or has_var_positional


def _load_entry(config: AegraConfig, graph_id: str, spec: GraphSpec) -> _Entry:
    target, _, attribute = spec.path.rpartition(":")

    def failure(exc: BaseException, hint: str) -> ConfigError:
        return ConfigError(f"graph {graph_id!r} ({spec.path}) failed to load: {type(exc).__name__}: {exc}", hint)

    file_path = config.resolve(target) if _is_file_reference(target) else None
    try:
        module = _import_file(file_path) if file_path is not None else importlib.import_module(target)
    except FileNotFoundError as exc:
        raise failure(exc, f"check the path in {config.path.name}; relative paths start from {config.root}") from exc
    except SyntaxError as exc:
        where = f"{exc.filename}, line {exc.lineno}" if exc.filename else (str(file_path) if file_path else target)
        raise failure(exc, f"fix the syntax error in {where}") from exc
    except ImportError as exc:
        missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
        if missing and file_path is None and (target == missing or target.startswith(missing + ".")):
            hint = (
                f"check the module name {target!r}, install its package, or list the folder that contains it "
                f'in "dependencies"'
            )
        elif missing:
            hint = (
                f"install the package that provides {missing.split('.')[0]!r} in the environment aegra runs in, "
                f'or add its folder to "dependencies" in {config.path.name}'
            )
        else:
            hint = f"fix the import at {_raised_at(exc, config.root)}"
        raise failure(exc, hint) from exc
    except Exception as exc:
        raise failure(exc, f"it raised while being imported, at {_raised_at(exc, config.root)}; fix it there") from exc

    value = getattr(module, attribute, _MISSING)
    if value is _MISSING:
        exports = _graph_like_exports(module)
        close = difflib.get_close_matches(attribute, exports, n=1)
        if close:
            hint = f"did you mean {target}:{close[0]}?"
        elif exports:
            hint = f"it exports {', '.join(exports)}; point {graph_id!r} at the compiled graph or factory"
        else:
            hint = f"define {attribute} = builder.compile() in {target}, or fix the name after ':'"
        exc = AttributeError(f"{target} has no attribute {attribute!r}")
        raise failure(exc, hint)

    try:
        if isinstance(value, Pregel):
            if value.checkpointer not in (None, True, False) or value.store is not None:
                logger.warning(
                    "graph %r was compiled with its own checkpointer or store; aegra replaces them with its own",
                    graph_id,
                )
            return _Entry(graph_id, spec, _named(value, graph_id), None)
        if isinstance(value, StateGraph):
            try:
                compiled = value.compile()
            except Exception as exc:
                raise failure(exc, f"fix the StateGraph {attribute!r} in {target} so that .compile() succeeds") from exc
            return _Entry(graph_id, spec, _named(compiled, graph_id), None)
        if callable(value) and not inspect.isclass(value):
            takes_config = _factory_takes_config(attribute, value)
            return _Entry(graph_id, spec, None, value, takes_config)
        kind = f"the class {value.__name__}" if inspect.isclass(value) else type(value).__name__
        raise TypeError(f"{attribute!r} is {kind}, not a compiled graph, a StateGraph or a graph factory")
    except TypeError as exc:
        raise failure(
            exc,
            f"point {graph_id!r} at a compiled graph (builder.compile()), a StateGraph, or a function "
            "that takes no argument or `config` and returns one",
        ) from exc


def load_object(config: AegraConfig, reference: str, what: str) -> Any:
    """The object `reference` (`./file.py:attr` or `package.module:attr`) names, imported the way graphs are.

    `env` and local `dependencies` are applied first, so an auth module or a custom app can import the
    project's own packages. `what` names the setting in messages (e.g. "auth.path"). Every failure is one
    ConfigError carrying the cause, so the server refuses to start rather than run without the object.
    """
    target, sep, attribute = reference.rpartition(":")
    if not sep or not target or not attribute:
        raise ConfigError(
            f"{what} {reference!r} must name a file or module and an attribute",
            "write it like './auth.py:auth' or 'my_package.auth:auth'",
        )
    _apply_env(config)
    _prepare_dependencies(config)
    file_path = config.resolve(target) if _is_file_reference(target) else None
    try:
        module = _import_file(file_path) if file_path is not None else importlib.import_module(target)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{what} {reference!r} cannot be loaded: {exc}",
            f"check the path in {config.path.name}; relative paths start from {config.root}",
        ) from exc
    except Exception as exc:  # noqa: BLE001 - user code may raise anything while being imported
        raise ConfigError(
            f"{what} {reference!r} cannot be loaded: {type(exc).__name__}: {exc}",
            f"fix {file_path or target}; run it with python to see the full traceback",
        ) from exc
    value = getattr(module, attribute, _MISSING)
    if value is _MISSING:
        public = [name for name in vars(module) if not name.startswith("_")]
        close = difflib.get_close_matches(attribute, public, n=1)
        hint = f"did you mean {target}:{close[0]}?" if close else f"define {attribute} in {target}, or fix the name after ':'"
        raise ConfigError(f"{what} {reference!r} cannot be loaded: {target} has no attribute {attribute!r}", hint)
    return value


def _named(graph: Pregel, graph_id: str) -> Pregel:
    """Like langgraph-api: a graph left with the default name is named after its id (a copy; never mutate)."""
    if graph.name == _DEFAULT_GRAPH_NAME:
        return graph.copy(update={"name": graph_id})
    return graph


# ---------------------------------------------------------------------------------------------------------
# Introspection (run in worker threads)


def _state_jsonschema(graph: Pregel) -> dict[str, Any]:
    """The full state, one field per stream channel, as langgraph-api builds it (unschematizable → Any)."""
    fields: dict[str, Any] = {}
    for key in graph.stream_channels_list:
        channel = graph.channels[key]
        update_type = getattr(channel, "UpdateType", Any)
        try:
            TypeAdapter(update_type).json_schema()
            fields[key] = (update_type, None)
        except Exception:
            fields[key] = (Any, None)
    return create_model(graph.get_name("State"), **fields).model_json_schema()


def _config_jsonschema(graph: Pregel) -> dict[str, Any]:
    """The `configurable` schema langgraph-api serves as config_schema.

    langgraph-api reads it from the deprecated `graph.config_schema()`, whose `configurable` field is the
    graph's `context_schema` in langgraph >= 1.0 (and absent without one). We build the same schema directly:
    the deprecated call warns, and silencing warnings from a worker thread is not thread-safe.
    """
    context_schema = getattr(graph, "context_schema", None)
    if context_schema is None:
        return {}
    schema = TypeAdapter(context_schema).json_schema()
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for key in _EXCLUDED_CONFIG_KEYS:
            properties.pop(key, None)
    return schema


def _safely(what: str, graph: Any, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except Exception as exc:  # a graph we cannot describe is still a graph we can run
        logger.warning("cannot build the %s schema of graph %r: %s", what, getattr(graph, "name", graph), exc)
        return None


def _graph_schemas(graph: Any) -> dict[str, Any]:
    return {
        "input_schema": _safely("input", graph, graph.get_input_jsonschema),
        "output_schema": _safely("output", graph, graph.get_output_jsonschema),
        "state_schema": _safely("state", graph, lambda: _state_jsonschema(graph)),
        "config_schema": _safely("config", graph, lambda: _config_jsonschema(graph)),
        "context_schema": _safely("context", graph, graph.get_context_jsonschema),
    }


def _drawable_json(drawable: Any) -> dict[str, Any]:
    data = drawable.to_json()
    for node in data.get("nodes", []):
        if isinstance(node, dict) and isinstance(node.get("data"), dict):
            node["data"].pop("id", None)  # langgraph-api drops the class path of each node's runnable
    return data


def _is_local(graph: Any) -> bool:
    """A Pregel whose async introspection is just the sync one, so it can run in a thread instead."""
    cls = type(graph)
    return (
        isinstance(graph, Pregel)
        and cls.aget_graph is Pregel.aget_graph
        and cls.aget_subgraphs is Pregel.aget_subgraphs
    )


def _xray_key(xray: bool | int) -> tuple[bool, int]:
    return (isinstance(xray, bool), int(xray))  # True and 1 are different requests but equal dict keys


# ---------------------------------------------------------------------------------------------------------
# The registry


class GraphRegistry:
    """The graphs of one aegra.json, by id, in config order."""

    def __init__(self, entries: dict[str, _Entry]) -> None:
        self._entries = entries
        self._schemas: dict[str, dict[str, Any]] = {}
        self._drawings: dict[tuple[str, bool, int], dict[str, Any]] = {}
        self._subgraphs: dict[tuple[str, str | None, bool], dict[str, dict[str, Any]]] = {}
        # Context-manager factories entered by `graph()` (which returns a bare graph) stay open until aclose().
        self._lingering = AsyncExitStack()

    @classmethod
    def load(cls, config: AegraConfig) -> GraphRegistry:
        _apply_env(config)
        _prepare_dependencies(config)
        entries = {graph_id: _load_entry(config, graph_id, spec) for graph_id, spec in config.graphs.items()}
        return cls(entries)

    # -- lookup

    @property
    def ids(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, graph_id: object) -> bool:
        return graph_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries)

    def description(self, graph_id: str) -> str | None:
        return self._entry(graph_id).spec.description

    def is_factory(self, graph_id: str) -> bool:
        return self._entry(graph_id).factory is not None

    def _entry(self, graph_id: str) -> _Entry:
        try:
            return self._entries[graph_id]
        except KeyError:
            raise UnknownGraphError(graph_id, self.ids) from None

    # -- graphs for runs

    async def graph(
        self, graph_id: str, config: dict[str, Any] | None = None, *, checkpointer: Any = None, store: Any = None
    ) -> Pregel:
        """The graph for one run: a copy carrying `checkpointer` and `store`; factories are called each time.

        A factory that is an async context manager is entered and stays open until `aclose()`; prefer
        `graph_scope()` for those, which closes it when the run ends.
        """
        entry = self._entry(graph_id)
        base = await self._build(entry, config, self._lingering)
        return base.copy(update={"checkpointer": checkpointer, "store": store})

    @asynccontextmanager
    async def graph_scope(
        self, graph_id: str, config: dict[str, Any] | None = None, *, checkpointer: Any = None, store: Any = None
    ) -> AsyncIterator[Pregel]:
        """Like `graph()`, but a context-manager factory is exited when the block ends."""
        entry = self._entry(graph_id)
        async with AsyncExitStack() as stack:
            base = await self._build(entry, config, stack)
            yield base.copy(update={"checkpointer": checkpointer, "store": store})

    async def aclose(self) -> None:
        await self._lingering.aclose()
        self._lingering = AsyncExitStack()

    async def _build(self, entry: _Entry, config: dict[str, Any] | None, stack: AsyncExitStack) -> Pregel:
        if entry.graph is not None:
            return entry.graph
        assert entry.factory is not None
        run_config: dict[str, Any] = dict(config or {})
        run_config["configurable"] = dict(run_config.get("configurable") or {})
        token = var_child_runnable_config.set(run_config)  # so get_config() works inside the factory
        try:
            result = entry.factory(run_config) if entry.factory_takes_config else entry.factory()
            if inspect.isawaitable(result):
                result = await result
            if not isinstance(result, (Pregel, StateGraph)):
                if hasattr(result, "__aenter__") and hasattr(result, "__aexit__"):
                    result = await stack.enter_async_context(result)
                elif hasattr(result, "__enter__") and hasattr(result, "__exit__"):
                    result = stack.enter_context(result)
        finally:
            var_child_runnable_config.reset(token)
        if isinstance(result, StateGraph):
            result = result.compile()
        if not isinstance(result, Pregel):
            raise ConfigError(
                f"graph {entry.graph_id!r} ({entry.spec.path}): the factory returned "
                f"{type(result).__name__}, not a compiled graph or a StateGraph",
                "make the factory return builder.compile() (or the StateGraph itself)",
            )
        return _named(result, entry.graph_id)

    @asynccontextmanager
    async def _introspected(self, graph_id: str, config: dict[str, Any] | None) -> AsyncIterator[Pregel]:
        entry = self._entry(graph_id)
        if entry.graph is not None:
            yield entry.graph
            return
        async with AsyncExitStack() as stack:
            yield await self._build(entry, config, stack)

    # -- introspection

    async def schemas(self, graph_id: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
        """`{graph_id, input_schema, output_schema, state_schema, config_schema, context_schema}`."""
        entry = self._entry(graph_id)
        cached = self._schemas.get(graph_id)
        if cached is None:
            async with self._introspected(graph_id, config) as graph:
                cached = await asyncio.to_thread(_graph_schemas, graph)
            if entry.graph is not None:
                self._schemas[graph_id] = cached
            else:
                return {"graph_id": graph_id, **cached}
        return {"graph_id": graph_id, **copy.deepcopy(cached)}

    async def drawable(
        self, graph_id: str, config: dict[str, Any] | None = None, xray: bool | int = False
    ) -> dict[str, Any]:
        """`{nodes: [{id, type, data, metadata?}], edges: [{source, target, conditional?, data?}]}`.

        Raises NotImplementedError for a graph that cannot be drawn (langgraph-api answers 422).
        """
        entry = self._entry(graph_id)
        key = (graph_id, *_xray_key(xray))
        cached = self._drawings.get(key)
        if cached is None:
            async with self._introspected(graph_id, config) as graph:
                if _is_local(graph):
                    cached = await asyncio.to_thread(lambda: _drawable_json(graph.get_graph(xray=xray)))
                else:
                    drawable = await graph.aget_graph(xray=xray)
                    cached = await asyncio.to_thread(_drawable_json, drawable)
            if entry.graph is None:
                return cached
            self._drawings[key] = cached
        return copy.deepcopy(cached)

    async def subgraphs(
        self,
        graph_id: str,
        config: dict[str, Any] | None = None,
        namespace: str | None = None,
        recurse: bool = False,
    ) -> dict[str, dict[str, Any]]:
        """`{namespace: schemas}` for each subgraph (`{}` when there are none), as langgraph-api returns it."""
        entry = self._entry(graph_id)
        key = (graph_id, namespace or None, bool(recurse))
        cached = self._subgraphs.get(key)
        if cached is None:
            async with self._introspected(graph_id, config) as graph:
                if _is_local(graph):
                    cached = await asyncio.to_thread(
                        lambda: {
                            ns: _graph_schemas(sub)
                            for ns, sub in graph.get_subgraphs(namespace=namespace or None, recurse=bool(recurse))
                        }
                    )
                else:
                    found = [
                        item async for item in graph.aget_subgraphs(namespace=namespace or None, recurse=bool(recurse))
                    ]
                    cached = await asyncio.to_thread(lambda: {ns: _graph_schemas(sub) for ns, sub in found})
            if entry.graph is None:
                return cached
            self._subgraphs[key] = cached
        return copy.deepcopy(cached)


def check_graphs(config: AegraConfig) -> list[str]:
    """Import every graph now (the CLI does this before starting the server); returns the graph ids."""
    return GraphRegistry.load(config).ids
