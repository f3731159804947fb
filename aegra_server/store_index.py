"""LangGraph's SQLite and Postgres stores, with semantic search and TTLs that behave the same on both.

SQLite. `AsyncSqliteStore` does vector search with the sqlite-vec extension, which a Python built without
extension loading (this machine's python3, many distribution builds) cannot load. `AegraSqliteStore` keeps
LangGraph's tables and its `store_vectors` layout (one float32 BLOB per indexed field), but never loads the
extension: vectors are scaled to unit length when embedded, and a Python SQL function scores them, so cosine
similarity is one dot product per vector. A search with `query` ranks each item by its best field (max
pooling, as InMemoryStore and pgvector's DISTINCT ON do), then applies the namespace prefix, filter, limit and
offset in SQL. Without `query`, search is LangGraph's own.

Both stores, where upstream falls short (langgraph-checkpoint-sqlite 3.1 / -postgres 3.2):

- Re-putting an item replaces its vectors: a put with `index=False`, other paths, or fewer list elements
  no longer leaves the old vectors behind to be found. Deleted and swept items lose their vectors (SQLite
  does not enforce the foreign key's ON DELETE CASCADE without `PRAGMA foreign_keys`; a trigger does it).
- Semantic search with an offset returns the items after the offset (upstream's pre-ranking LIMIT ignores it).
- SQLite: `config.store.index.fields` is honoured (upstream reads a different key), `created_at` survives an
  update (upstream's INSERT OR REPLACE resets it), and an explicit `refresh_ttl=True` refreshes even when
  `refresh_on_read` is false (as the BaseStore contract and the Postgres store do). A store without a TTL
  config still refreshes and sweeps items put with an explicit `ttl`.

Items put with `index=False` have no vectors, so a semantic search does not return them, as on Postgres.
"""

from __future__ import annotations

import math
from array import array
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from functools import lru_cache
from operator import mul
from typing import Any

import orjson
from langchain_core.embeddings import Embeddings
from langgraph.store.base import Op, PutOp, Result, SearchOp, TTLConfig
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.sqlite.aio import AsyncSqliteStore
from langgraph.store.sqlite.base import (
    _PLACEHOLDER,
    NS_MATCH_FUNCTION,
    _namespace_match,
    _namespace_prefix_condition,
    _validate_filter_key,
)

from aegra_server.embeddings import CheckedEmbeddings

SCORE_FUNCTION = "aegra_vector_score"

# Vectors of deleted (and TTL-swept) items go with them, whatever PRAGMA foreign_keys says.
_SQLITE_VECTOR_CLEANUP = """
CREATE TRIGGER IF NOT EXISTS aegra_store_vectors_cleanup AFTER DELETE ON store
BEGIN
    DELETE FROM store_vectors WHERE prefix = OLD.prefix AND key = OLD.key;
END;
"""

_dot = getattr(math, "sumprod", None) or (lambda a, b: sum(map(mul, a, b)))


@lru_cache(maxsize=64)
def _query_vector(blob: bytes) -> array:
    vector = array("f")
    vector.frombytes(blob)
    return vector


def vector_score(stored: bytes | None, query: bytes | None) -> float | None:
    """Cosine similarity of two float32 BLOBs of unit vectors; NULL when either is missing or sizes differ.

    The query's BLOB is the same for every row of one search, so it is unpacked once (cached by value).
    """
    if stored is None or query is None or len(stored) != len(query) or len(stored) % 4:
        return None
    vector = array("f")
    vector.frombytes(stored)
    return float(_dot(vector, _query_vector(bytes(query))))


# Vectors an AegraSqliteStore batch computed before taking its lock, by text; see AegraSqliteStore.abatch.
_PREFETCHED: ContextVar[dict[str, list[float]] | None] = ContextVar("aegra_store_prefetched", default=None)
# Whether the batch being run writes (AegraSqliteStore._cursor begins its transaction immediate if so).
_WRITES: ContextVar[bool] = ContextVar("aegra_store_batch_writes", default=False)


class _Prefetched(Embeddings):
    """The store's embeddings as upstream code calls them: from the batch's prefetched vectors when it has
    them all, else from the embedding function."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        prefetched = _PREFETCHED.get()
        if prefetched is not None and all(text in prefetched for text in texts):
            return [prefetched[text] for text in texts]
        return await self.inner.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]


def _namespace_text(namespace: tuple[str, ...]) -> str:
    return ".".join(namespace)


def _vector_cleanup_queries(put_ops: Sequence[tuple[int, PutOp]], placeholder: str) -> list[tuple[str, list]]:
    """DELETEs of the stored vectors of every item a batch of puts writes or deletes."""
    keys: dict[str, dict[str, None]] = defaultdict(dict)
    for _, op in put_ops:
        keys[_namespace_text(op.namespace)][op.key] = None
    queries = []
    for prefix, names in keys.items():
        marks = ",".join([placeholder] * len(names))
        queries.append(
            (f"DELETE FROM store_vectors WHERE prefix = {placeholder} AND key IN ({marks})", [prefix, *names])
        )
    return queries


def _expanded_limit(limit: int, offset: int, vectors_per_item: int) -> int:
    """How many vectors to rank before keeping each item's best: enough for `offset + limit` items."""
    return (limit + offset) * max(vectors_per_item, 1) * 2 + 1


def ttl_config_with_defaults(ttl: TTLConfig | None) -> TTLConfig:
    """A TTL config for the stores: items put with an explicit `ttl` are refreshed on read and swept even when
    aegra.json has no `store.ttl` (a store without one neither refreshes on SQLite nor sweeps on either)."""
    config: dict[str, Any] = {"refresh_on_read": True}
    config.update({k: v for k, v in (ttl or {}).items() if v is not None})
    return TTLConfig(**config)  # type: ignore[typeddict-item]


# The comparison operators LangGraph's stores understand inside a field's filter, e.g. {"n": {"$gt": 2}}.
FILTER_OPERATORS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"}
# The ordering ones, as SQL.
_ORDERINGS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
# A condition of our own, "the value at this path is an object"; never accepted from a caller (check_filter).
IS_OBJECT = "$aegra_is_object"


class InvalidFilter(ValueError):
    """A search filter one backend would refuse (and another might silently ignore)."""


def is_operators(value: Any) -> bool:
    """Whether a filter value is an object of operators ({"$gt": 1}) rather than a nested value to match field
    by field ({"x": 1}): any key beginning with "$" makes it operators, as in InMemoryStore (langgraph dev)."""
    return isinstance(value, dict) and any(isinstance(k, str) and k.startswith("$") for k in value)


def check_filter(filter: dict[str, Any] | None) -> None:
    """Refuse a bad filter in the caller's own request. The stores batch concurrent operations into one, and an
    operation that fails inside a batch fails all of them: one client's bad filter cost others their writes."""
    for key, value in (filter or {}).items():
        if key.startswith("$"):
            raise InvalidFilter(f"filter: {key!r} is not a field; operators go inside a field, like {{\"n\": {{\"$gt\": 1}}}}")
        _check_condition(f"filter.{key}", key, value)


def _check_condition(where: str, key: str, value: Any) -> None:
    try:
        _validate_filter_key(key)  # SQLite's rule for a key in a JSON path; Postgres is held to it too
    except ValueError as exc:
        raise InvalidFilter(f"{where}: {exc}") from None
    if is_operators(value):
        unknown = sorted(k for k in value if k not in FILTER_OPERATORS)
        if unknown:
            raise InvalidFilter(f"{where}: unknown operator {unknown[0]!r}; use one of {sorted(FILTER_OPERATORS)}")
        for operator, operand in value.items():
            if operator in _ORDERINGS and json_kind(operand) not in _ORDERED_KINDS:
                raise InvalidFilter(f"{where}.{operator}: compares a number, a string or a boolean, not {operand!r}")
    elif isinstance(value, dict):
        for inner_key, inner in value.items():
            _check_condition(f"{where}.{inner_key}", inner_key, inner)


# How a filter compares, on either database, as InMemoryStore (langgraph dev) does where it answers at all:
# - {"f": x} and $eq: JSON equality of the value at `f` with x (1 equals 1.0, not true, nor "1"); null also
#   matches a missing field (both are None to a Python reader). $ne is the negation: a missing field differs
#   from anything but null.
# - $gt, $gte, $lt, $lte: only values of the operand's JSON type match, compared as that type: numbers as
#   numbers, strings by code point, false < true. (InMemoryStore raises on other types; LangGraph's Postgres
#   store compared text, so 10 < 2, and its SQLite store cast text to numbers.)
# Lists and objects compare by equality only. The two stores' _get_filter_condition write this in SQL.
_ORDERED_KINDS = ("number", "string", "boolean")


def json_kind(value: Any) -> str:
    """A filter operand's JSON type: number, string, boolean, null, or other (a list or an object)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string" if isinstance(value, str) else "other"


def filter_conditions(filter: dict[str, Any] | None) -> list[tuple[tuple[str, ...], Any]]:
    """A checked filter as (path, condition) pairs, the condition a plain value or an object of operators.

    LangGraph's SQLite and Postgres stores read every object in a filter as operators, so {"a": {"b": 1}} failed
    ("unknown operator 'b'"). langgraph dev matches such an object field by field: `a` is an object whose `b`
    matches 1, fields not named are free, and the fields' conditions may be operators or objects again. Here that
    is one condition per path: (("a",), {IS_OBJECT: True}) and (("a", "b"), 1).
    """
    conditions: list[tuple[tuple[str, ...], Any]] = []
    for key, value in (filter or {}).items():
        _add_conditions(conditions, (key,), value)
    return conditions


def _add_conditions(conditions: list, path: tuple[str, ...], value: Any) -> None:
    if isinstance(value, dict) and not is_operators(value):
        conditions.append((path, {IS_OBJECT: True}))
        for key, inner in value.items():
            _add_conditions(conditions, (*path, key), inner)
    else:
        conditions.append((path, value))


def _with_filter(search_ops: list[tuple[int, SearchOp]], rewrite: Any) -> list[tuple[int, SearchOp]]:
    """The batch's search operations, each filter in the form `rewrite` makes of its conditions for one store."""
    return [(i, op._replace(filter=rewrite(filter_conditions(op.filter))) if op.filter else op) for i, op in search_ops]


class _CheckedFilters:
    """Filters are checked before an operation joins a batch (see check_filter)."""

    async def asearch(self, namespace_prefix: tuple[str, ...], /, *, filter: dict[str, Any] | None = None, **kwargs):
        check_filter(filter)
        return await super().asearch(namespace_prefix, filter=filter, **kwargs)  # type: ignore[misc]


class AegraSqliteStore(_CheckedFilters, AsyncSqliteStore):
    """AsyncSqliteStore with semantic search that needs no SQLite extension; see the module docstring."""

    def __init__(self, conn: Any, *, index: dict[str, Any] | None = None, ttl: TTLConfig | None = None) -> None:
        if index:
            index = dict(index)
            fields = index.get("fields") or ["$"]
            index["fields"] = fields
            index["text_fields"] = fields  # the key langgraph-checkpoint-sqlite reads
        super().__init__(conn, index=index, ttl=ttl_config_with_defaults(ttl))  # type: ignore[arg-type]
        self._embedder: CheckedEmbeddings | None = None
        if self.index_config:
            inner = self.embeddings
            if isinstance(inner, CheckedEmbeddings):
                inner = inner.inner
            self._embedder = CheckedEmbeddings(inner, int(self.index_config["dims"]), normalize=True)
            self.embeddings = _Prefetched(self._embedder)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Embed what the batch needs first, then run it: upstream embeds inside its transaction, holding the
        store's lock (and, after a read in the same batch, an SQLite snapshot a concurrent write invalidates)
        for as long as the embedding provider takes."""
        ops = list(ops)
        writes = _WRITES.set(any(isinstance(op, PutOp) or getattr(op, "refresh_ttl", False) for op in ops))
        try:
            texts = self._texts_to_embed(ops) if self._embedder is not None else []
            if not texts:
                return await super().abatch(ops)
            vectors = await self._embedder.aembed_documents(texts)  # type: ignore[union-attr]
            token = _PREFETCHED.set(dict(zip(texts, vectors, strict=True)))
            try:
                return await super().abatch(ops)
            finally:
                _PREFETCHED.reset(token)
        finally:
            _WRITES.reset(writes)

    @asynccontextmanager
    async def _cursor(self, *, transaction: bool = True) -> AsyncIterator[Any]:
        """Upstream's cursor, but a batch that writes (a put, or a read that refreshes TTLs) takes the write lock
        when it begins. Begun deferred, its write after its reads fails at once ("database is locked") if another
        connection wrote in between, whatever the busy timeout; begun immediate, it waits its turn instead."""
        if not (transaction and _WRITES.get()):
            async with super()._cursor(transaction=transaction) as cur:
                yield cur
            return
        if not self.is_setup:
            await self.setup()
        async with self.lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            async with self.conn.cursor() as cur:
                try:
                    yield cur
                finally:
                    await self.conn.execute("COMMIT")

    def _texts_to_embed(self, ops: list[Op]) -> list[str]:
        puts = [(i, op) for i, op in enumerate(ops) if isinstance(op, PutOp)]
        texts: dict[str, None] = {}
        if puts:
            _, request = super()._prepare_batch_PUT_queries(puts)
            for *_, text in request[1] if request else ():
                texts[text] = None
        for op in ops:
            if isinstance(op, SearchOp) and op.query:
                texts[op.query] = None
        return list(texts)

    # -- schema ---------------------------------------------------------------------------------------------

    async def setup(self) -> None:
        """LangGraph's tables and migrations, the `store_vectors` table (always, so a later `store.index` finds
        it and a removed one leaves no stale vectors) and our SQL functions. sqlite-vec is never loaded."""
        async with self.lock:
            if self.is_setup:
                return
            await self.conn.create_function(NS_MATCH_FUNCTION, 2, _namespace_match, deterministic=True)
            await self.conn.create_function(SCORE_FUNCTION, 2, vector_score, deterministic=True)
            await self._migrate("store_migrations", self.MIGRATIONS)
            await self._migrate("vector_migrations", self.VECTOR_MIGRATIONS)
            await self.conn.executescript(_SQLITE_VECTOR_CLEANUP)
            self.is_setup = True

    async def _migrate(self, table: str, migrations: Sequence[str]) -> None:
        await self.conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (v INTEGER PRIMARY KEY)")
        async with self.conn.execute(f"SELECT v FROM {table} ORDER BY v DESC LIMIT 1") as cur:
            row = await cur.fetchone()
        version = -1 if row is None else row[0]
        for v, sql in enumerate(migrations[version + 1 :], start=version + 1):
            await self.conn.executescript(sql)
            await self.conn.execute(f"INSERT INTO {table} (v) VALUES (?)", (v,))

    # -- TTL --------------------------------------------------------------------------------------------------

    @contextmanager
    def _refresh_as_requested(self) -> Iterator[None]:
        """Let each op's `refresh_ttl` decide alone. BaseStore already resolved its default from
        `refresh_on_read`; the SQLite store checks that setting again and so ignores an explicit True."""
        saved = self.ttl_config
        self.ttl_config = TTLConfig(**{**(saved or {}), "refresh_on_read": True})  # type: ignore[typeddict-item]
        try:
            yield
        finally:
            self.ttl_config = saved

    def _get_batch_GET_ops_queries(self, get_ops):  # type: ignore[override]
        with self._refresh_as_requested():
            return super()._get_batch_GET_ops_queries(get_ops)

    # -- writes -----------------------------------------------------------------------------------------------

    def _prepare_batch_PUT_queries(self, put_ops):  # type: ignore[override]
        queries, embedding_request = super()._prepare_batch_PUT_queries(put_ops)
        rewritten: list[tuple[str, Any]] = _vector_cleanup_queries(put_ops, "?")
        for query, params in queries:
            rewritten.append((_upsert_keeping_created_at(query), params))
        return rewritten, embedding_request

    # -- search -----------------------------------------------------------------------------------------------

    def _prepare_batch_search_queries(self, search_ops):  # type: ignore[override]
        search_ops = _with_filter(search_ops, _sqlite_filter)
        with self._refresh_as_requested():
            queries, embedding_requests = super()._prepare_batch_search_queries(search_ops)
        if self.index_config:
            for position, (_, op) in enumerate(search_ops):
                if op.query:
                    sql, params = self._semantic_query(op)
                    queries[position] = (sql, params, queries[position][2])
        return queries, embedding_requests

    def _semantic_query(self, op: SearchOp) -> tuple[str, list[Any]]:
        """Items under the prefix that pass the filter, each scored by its best vector, best first.

        The result has the columns of upstream's vector query (the last one `score`), so its row parsing and
        TTL refresh apply unchanged; `_PLACEHOLDER` becomes the query's float32 BLOB.
        """
        conditions, params = self._filter_conditions(op.filter)
        ns_condition, ns_params = _namespace_prefix_condition(op.namespace_prefix, column="s.prefix")
        where = " AND ".join([ns_condition, *conditions])
        sql = f"""
            SELECT s.prefix, s.key, s.value, s.created_at, s.updated_at, s.expires_at, s.ttl_minutes,
                MAX({SCORE_FUNCTION}(sv.embedding, ?)) AS score
            FROM store AS s
            JOIN store_vectors AS sv ON sv.prefix = s.prefix AND sv.key = s.key
            WHERE {where}
            GROUP BY s.prefix, s.key
            HAVING score IS NOT NULL
            ORDER BY score DESC, s.prefix, s.key
            LIMIT ? OFFSET ?
        """
        return sql, [_PLACEHOLDER, *ns_params, *params, op.limit, op.offset]

    def _get_filter_condition(self, key: str, op: str, value: Any) -> tuple[str, list]:
        """One condition of a filter, as the rule above json_kind says."""
        _validate_filter_key(key)  # spliced into the path, as upstream does
        path = f"'$.{key}'"
        if op == IS_OBJECT:
            return f"json_type(value, {path}) = 'object'", []
        read, kind = f"json_extract(value, {path})", json_kind(value)
        if op in ("$eq", "$ne") and kind == "null":
            return f"{read} IS {'NOT ' if op == '$ne' else ''}NULL", []
        if kind == "other":  # a list or an object: json_extract gives its JSON text, minified as orjson writes it
            equal, params = f"{read} = ?", [orjson.dumps(value).decode()]
        else:
            of_kind = _SQLITE_TYPES[kind].format(path=path)
            operand = int(value) if kind == "boolean" else value  # json_extract reads a boolean as 1 or 0
            if op in _ORDERINGS:
                return f"({of_kind} AND {read} {_ORDERINGS[op]} ?)", [operand]
            equal, params = f"({of_kind} AND {read} = ?)", [operand]
        # A missing field makes the equality NULL: it differs.
        return (f"NOT COALESCE({equal}, 0)" if op == "$ne" else equal), params

    def _filter_conditions(self, filter: dict[str, Any] | None) -> tuple[list[str], list[Any]]:
        """The conditions AsyncSqliteStore's plain search applies for `filter` (it builds them inline)."""
        conditions: list[str] = []
        params: list[Any] = []
        for key, value in (filter or {}).items():
            _validate_filter_key(key)
            for operator, operand in value.items():  # operators only (see _sqlite_filter)
                condition, extra = self._get_filter_condition(key, operator, operand)
                conditions.append(condition)
                params.extend(extra)
        return conditions, params


# Whether the value at a path is of a JSON type, in SQLite.
_SQLITE_TYPES = {
    "number": "json_type(value, {path}) IN ('integer', 'real')",
    "string": "json_type(value, {path}) = 'text'",
    "boolean": "json_type(value, {path}) IN ('true', 'false')",
}


def _sqlite_filter(conditions: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    # AsyncSqliteStore reads a key as a JSON path ('$.a.b'), so a path is its keys joined by dots; every condition
    # as operators, so that _get_filter_condition writes them all (a plain value it compares inline, loosely).
    return {".".join(path): condition if is_operators(condition) else {"$eq": condition} for path, condition in conditions}


def _upsert_keeping_created_at(query: str) -> str:
    """Upstream writes items with INSERT OR REPLACE, which resets created_at; update in place instead."""
    head = "INSERT OR REPLACE INTO store ("
    stripped = query.lstrip()
    if not stripped.startswith(head):
        return query
    return (
        "INSERT INTO store (" + stripped[len(head) :].rstrip()
        + """
        ON CONFLICT (prefix, key) DO UPDATE SET
            value = excluded.value,
            updated_at = excluded.updated_at,
            expires_at = excluded.expires_at,
            ttl_minutes = excluded.ttl_minutes
        """
    )


class AegraPostgresStore(_CheckedFilters, AsyncPostgresStore):
    """AsyncPostgresStore (pgvector) with stale vectors removed on re-put and offsets honoured in search."""

    def __init__(self, conn: Any, *, index: dict[str, Any] | None = None, ttl: TTLConfig | None = None) -> None:
        super().__init__(conn, index=index, ttl=ttl_config_with_defaults(ttl))  # type: ignore[arg-type]

    def _prepare_batch_PUT_queries(self, put_ops):  # type: ignore[override]
        queries, embedding_request = super()._prepare_batch_PUT_queries(put_ops)
        if self.index_config:
            queries = [*_vector_cleanup_queries(put_ops, "%s"), *queries]
        return queries, embedding_request

    def _prepare_batch_search_queries(self, search_ops):  # type: ignore[override]
        search_ops = _with_filter(search_ops, _postgres_filter)
        queries, embedding_requests = super()._prepare_batch_search_queries(search_ops)
        if self.index_config:
            per_item = int(self.index_config.get("__estimated_num_vectors", 1))  # type: ignore[arg-type]
            for position, (_, op) in enumerate(search_ops):
                if not (op.query and op.offset):
                    continue
                params = queries[position][1]
                # Upstream's params end with [ranked-vector LIMIT, limit, offset]; only patch what we recognise.
                if params[-3:] == [op.limit * per_item * 2 + 1, op.limit, op.offset]:
                    params[-3] = _expanded_limit(op.limit, op.offset, per_item)
        return queries, embedding_requests

    def _get_filter_condition(self, key: Any, op: str, value: Any) -> tuple[str, list]:
        """One condition of a filter on the value at a path (see _postgres_filter), as the rule above json_kind
        says. jsonb compares numbers as numbers and false < true; strings are compared as text in the "C"
        collation (code point order), not the database's."""
        path = list(key) if isinstance(key, tuple) else [key]
        at, kind = "value #> %s::text[]", json_kind(value)
        if op == IS_OBJECT:
            return f"jsonb_typeof({at}) = 'object'", [path]
        if kind == "null" and op in ("$eq", "$ne"):
            if op == "$eq":
                return f"({at} IS NULL OR {at} = 'null'::jsonb)", [path, path]
            return f"({at} IS NOT NULL AND {at} <> 'null'::jsonb)", [path, path]
        if op == "$eq":
            return f"{at} = %s::jsonb", [path, orjson.dumps(value).decode()]
        if op == "$ne":
            return f"{at} IS DISTINCT FROM %s::jsonb", [path, orjson.dumps(value).decode()]
        of_kind = f"jsonb_typeof({at}) = '{kind}'"
        if kind == "string":
            return f'({of_kind} AND (value #>> %s::text[]) COLLATE "C" {_ORDERINGS[op]} %s)', [path, path, value]
        return f"({of_kind} AND {at} {_ORDERINGS[op]} %s::jsonb)", [path, path, orjson.dumps(value).decode()]


def _postgres_filter(conditions: list[tuple[tuple[str, ...], Any]]) -> dict[Any, Any]:
    # Every condition as operators, keyed by its path: AsyncPostgresStore passes those to _get_filter_condition
    # (a plain value it compares inline, with a top-level key only).
    return {path: condition if is_operators(condition) else {"$eq": condition} for path, condition in conditions}
