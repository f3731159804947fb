"""`store.index.embed` → a LangChain `Embeddings`, resolved once at start-up.

`embed` takes the forms langgraph-api accepts:

- `"provider:model"`, e.g. `"openai:text-embedding-3-small"`: through `langchain.embeddings.init_embeddings`
  when the `langchain` package is installed, otherwise by importing the provider's integration package
  directly (`langchain-openai`, `langchain-cohere`, ...). A missing package is a `ConfigError` that names
  the package to install.
- `"./path/file.py:attr"` (relative to aegra.json) or `"package.module:attr"`: an `Embeddings` object, or
  a sync or async function `list[str] -> list[list[float]]` (wrapped by langgraph's `ensure_embeddings`).

`CheckedEmbeddings` wraps the result for the stores: it checks every vector against `dims` (a clear error
instead of a database one) and can scale vectors to unit length, which the SQLite index relies on.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.embeddings import Embeddings
from langgraph.store.base import ensure_embeddings

from aegra_server.config import AegraConfig, IndexConfig
from aegra_server.errors import ConfigError


@dataclass(frozen=True)
class Provider:
    module: str  # the integration package's import name
    cls: str
    model_arg: str  # the keyword its constructor takes the model name by

    @property
    def pip_name(self) -> str:
        return self.module.replace("_", "-")


# The providers langchain's init_embeddings knows, plus a few common integration packages.
PROVIDERS: dict[str, Provider] = {
    "openai": Provider("langchain_openai", "OpenAIEmbeddings", "model"),
    "azure_openai": Provider("langchain_openai", "AzureOpenAIEmbeddings", "model"),
    "cohere": Provider("langchain_cohere", "CohereEmbeddings", "model"),
    "huggingface": Provider("langchain_huggingface", "HuggingFaceEmbeddings", "model_name"),
    "ollama": Provider("langchain_ollama", "OllamaEmbeddings", "model"),
    "bedrock": Provider("langchain_aws", "BedrockEmbeddings", "model_id"),
    "google_vertexai": Provider("langchain_google_vertexai", "VertexAIEmbeddings", "model"),
    "google_genai": Provider("langchain_google_genai", "GoogleGenerativeAIEmbeddings", "model"),
    "mistralai": Provider("langchain_mistralai", "MistralAIEmbeddings", "model"),
    "fireworks": Provider("langchain_fireworks", "FireworksEmbeddings", "model"),
    "nomic": Provider("langchain_nomic", "NomicEmbeddings", "model"),
    "voyageai": Provider("langchain_voyageai", "VoyageAIEmbeddings", "model"),
}


def _is_file_reference(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def resolve_embeddings(config: AegraConfig) -> Embeddings:
    """The `Embeddings` that `store.index.embed` names. Raises ConfigError with a fix for every failure."""
    assert config.store is not None and config.store.index is not None
    return load_embeddings(config.store.index, config)


def load_embeddings(index: IndexConfig, config: AegraConfig) -> Embeddings:
    target, _, attribute = index.embed.rpartition(":")
    if not target or not attribute:
        raise ConfigError(
            f"store.index.embed {index.embed!r} is neither 'provider:model' nor 'file-or-module:attribute'",
            "use e.g. 'openai:text-embedding-3-small' or './embeddings.py:embed'",
        )
    # A provider first: model names may hold "/" and ":" ("huggingface:org/model", "ollama:model:tag").
    provider, _, model = index.embed.partition(":")
    if provider in PROVIDERS:
        return _from_provider(provider, model)
    is_file = _is_file_reference(target)
    return _from_object(index.embed, _import_attribute(config, target, attribute, is_file=is_file))


def _from_provider(provider: str, model: str) -> Embeddings:
    spec = PROVIDERS[provider]
    if not model:
        raise ConfigError(f"store.index.embed {provider + ':'!r} names no model", f"use e.g. '{provider}:<model name>'")
    if importlib.util.find_spec(spec.module) is None:
        raise ConfigError(
            f"store.index.embed uses {provider!r}, but its package {spec.pip_name!r} is not installed",
            f"pip install {spec.pip_name} (in the environment aegra runs in)",
        )
    try:
        init_embeddings = _langchain_init_embeddings()
        if init_embeddings is not None and provider in _langchain_providers():
            embeddings = init_embeddings(f"{provider}:{model}")
        else:
            module = importlib.import_module(spec.module)
            embeddings = getattr(module, spec.cls)(**{spec.model_arg: model})
    except Exception as exc:  # noqa: BLE001 - a provider may raise anything, typically for a missing key
        raise ConfigError(
            f"store.index.embed {provider}:{model}: cannot create the embeddings: {type(exc).__name__}: {exc}",
            "set the provider's API key or settings in .env or the environment (e.g. OPENAI_API_KEY)",
        ) from exc
    if not isinstance(embeddings, Embeddings):
        raise ConfigError(f"store.index.embed {provider}:{model} did not give a LangChain Embeddings object")
    return embeddings


def _langchain_init_embeddings() -> Any:
    if importlib.util.find_spec("langchain") is None:
        return None
    try:
        from langchain.embeddings import init_embeddings  # type: ignore[import-not-found]
    except ImportError:
        return None
    return init_embeddings


def _langchain_providers() -> set[str]:
    try:
        from langchain.embeddings import base  # type: ignore[import-not-found]
    except ImportError:
        return set()
    return set(getattr(base, "_SUPPORTED_PROVIDERS", {}))


def _import_attribute(config: AegraConfig, target: str, attribute: str, *, is_file: bool) -> Any:
    # The graph loader's importer: files become stable, uniquely named modules; `dependencies` and `env` from
    # aegra.json are already applied because the graphs are loaded first.
    from aegra_server.graphs import _import_file

    where = f"store.index.embed {target}:{attribute}"
    try:
        module = _import_file(config.resolve(target)) if is_file else importlib.import_module(target)
    except FileNotFoundError as exc:
        raise ConfigError(f"{where}: {exc}", f"relative paths start from {config.root}") from exc
    except ModuleNotFoundError as exc:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigError(
            f"{where}: cannot import {exc.name!r}",
            f"a provider is one of {known}; a module must be importable (install it or list its folder in "
            '"dependencies"); a file path ends in .py',
        ) from exc
    except Exception as exc:  # noqa: BLE001 - user code may raise anything while being imported
        raise ConfigError(f"{where}: importing it failed: {type(exc).__name__}: {exc}", "fix that module") from exc
    if not hasattr(module, attribute):
        raise ConfigError(f"{where}: {target} has no attribute {attribute!r}", "fix the name after ':'")
    return getattr(module, attribute)


def _from_object(embed: str, value: Any) -> Embeddings:
    if isinstance(value, Embeddings):
        return value
    if inspect.isclass(value):
        raise ConfigError(
            f"store.index.embed {embed!r} is a class",
            "point it at an instance (embeddings = MyEmbeddings()) or at a function list[str] -> list[list[float]]",
        )
    if not callable(value):
        raise ConfigError(
            f"store.index.embed {embed!r} is a {type(value).__name__}",
            "point it at an Embeddings object or a function list[str] -> list[list[float]]",
        )
    return ensure_embeddings(value)


class CheckedEmbeddings(Embeddings):
    """Embeddings whose vectors are lists of floats of exactly `dims`, optionally scaled to unit length."""

    def __init__(self, inner: Embeddings, dims: int, *, normalize: bool = False) -> None:
        self.inner = inner
        self.dims = dims
        self.normalize = normalize

    def _check(self, vectors: Sequence[Sequence[float]], count: int) -> list[list[float]]:
        if len(vectors) != count:
            raise ValueError(f"the embedding function returned {len(vectors)} vectors for {count} texts")
        checked = []
        for vector in vectors:
            values = [float(x) for x in vector]
            if not all(math.isfinite(x) for x in values):
                raise ValueError("the embedding function returned a vector with NaN or infinite values")
            if len(values) != self.dims:
                raise ValueError(
                    f"the embedding function returned a vector of {len(values)} dimensions, "
                    f"but store.index.dims is {self.dims}"
                )
            if self.normalize:
                values = unit(values)
            checked.append(values)
        return checked

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._check(self.inner.embed_documents(texts), len(texts)) if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self._check([self.inner.embed_query(text)], 1)[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._check(await self.inner.aembed_documents(texts), len(texts)) if texts else []

    async def aembed_query(self, text: str) -> list[float]:
        return self._check([await self.inner.aembed_query(text)], 1)[0]


def unit(vector: Sequence[float]) -> list[float]:
    """`vector` scaled to length 1 (a zero vector stays zero)."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0.0:
        return [0.0] * len(vector)
    return [x / norm for x in vector]
