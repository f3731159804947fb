"""Request bodies. Unknown fields are ignored, not rejected, as langgraph-api does (the SDK sends fields some
servers don't know, e.g. `strict_resume`)."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from aegra_server.api.extract import check as check_extract

log = logging.getLogger("aegra.http")

StreamMode = Literal[
    "values", "updates", "messages", "messages-tuple", "custom", "events", "debug", "tasks", "checkpoints"
]
SortOrder = Literal["asc", "desc"]
IfExists = Literal["raise", "do_nothing"]
# Upper bounds keep hostile numbers out of SQL (an offset past 2**63 overflows the driver) and out of date
# arithmetic (a ttl or delay of 1e308 overflows timedelta): a 422 naming the field, not a 500.
MAX_OFFSET = 2**31 - 1
MAX_TTL_MINUTES = 10 * 365 * 24 * 60  # ten years
MAX_DELAY_SECONDS = 365 * 24 * 60 * 60  # one year
# Each resource's public fields, in the order answered: what `select` may name (langgraph-api's lists; anything
# else is a 422).
AssistantField = Literal[
    "assistant_id", "graph_id", "config", "context", "created_at", "updated_at", "metadata", "version", "name", "description"
]
ThreadField = Literal[
    "thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "config", "status", "values", "interrupts"
]
RunField = Literal[
    "run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status", "metadata", "kwargs", "multitask_strategy"
]
# At least 1, as langgraph-api: a page of none would name itself as the next one.
Limit = Field(default=10, ge=1, le=1000)
Offset = Field(default=0, ge=0, le=MAX_OFFSET)


# Metadata keys the server sets itself, langgraph-api's list. What a client writes as metadata (a thread's, an
# assistant's, a run's or a cron's, and their config's) loses them with a warning in the log, not a 422, as
# langgraph-api drops them: a client cannot pass off a thread, run, assistant or cron id of its own. Filters
# (search, count) keep them.
RESERVED_METADATA_KEYS = frozenset({"thread_id", "assistant_id", "run_id", "cron_id", "counters_since_delta_snapshot"})


def _without_reserved_keys(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    dropped = sorted(RESERVED_METADATA_KEYS.intersection(metadata or ()))
    if not dropped:
        return metadata
    log.warning("reserved metadata keys dropped from the request: %s", ", ".join(dropped))
    return {k: v for k, v in metadata.items() if k not in RESERVED_METADATA_KEYS}


WrittenMetadata = Annotated[dict[str, Any] | None, AfterValidator(_without_reserved_keys)]


def _check_config(config: dict[str, Any]) -> dict[str, Any]:
    """`configurable` and `metadata` are merged key by key into the run's config, so they must be objects; `tags`
    and `recursion_limit` are typed as langgraph-api's Config has them (else a run would fail on them later)."""
    for key in ("configurable", "metadata"):
        if key in config and config[key] is None:
            config = {k: v for k, v in config.items() if k != key}
        elif key in config and not isinstance(config[key], dict):
            raise ValueError(f"config.{key} must be an object")
    tags = config.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)):
        raise ValueError("config.tags must be a list of strings")
    limit = config.get("recursion_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise ValueError("config.recursion_limit must be an integer")
    if "metadata" in config:  # only written configs are RunnableConfig: assistants', runs' and crons'
        config = {**config, "metadata": _without_reserved_keys(config["metadata"])}
    return config


RunnableConfig = Annotated[dict[str, Any], AfterValidator(_check_config)]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CheckpointRef(Body):
    """Which checkpoint: the `checkpoint` objects clients send (thread_id inside is ignored: the path wins)."""

    checkpoint_id: str | None = None
    checkpoint_ns: str = ""
    checkpoint_map: dict[str, str] | None = None
    thread_id: str | None = None


def _unwrap_configurable(value: Any) -> Any:
    """`before` comes as a checkpoint id, a checkpoint object, or a config `{"configurable": {...}}`."""
    if isinstance(value, str):
        return {"checkpoint_id": value}
    if isinstance(value, dict) and "configurable" in value:
        return value["configurable"]
    return value


BeforeRef = Annotated[CheckpointRef, BeforeValidator(_unwrap_configurable)]


class AssistantCreate(Body):
    graph_id: str
    assistant_id: str | None = None
    config: RunnableConfig | None = None
    context: dict[str, Any] | None = None
    metadata: WrittenMetadata = None
    if_exists: IfExists = "raise"
    name: str | None = None
    description: str | None = None


class AssistantPatch(Body):
    graph_id: str | None = None
    config: RunnableConfig | None = None
    context: dict[str, Any] | None = None
    metadata: WrittenMetadata = None
    name: str | None = None
    description: str | None = None


class AssistantSearch(Body):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: int = Limit
    offset: int = Offset
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = None
    sort_order: SortOrder | None = None
    select: list[AssistantField] | None = None


class AssistantCount(Body):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None


class AssistantVersions(Body):
    metadata: dict[str, Any] | None = None
    limit: int = Limit
    offset: int = Offset


class SetLatest(Body):
    version: int


# What a state edit writes, as langgraph-api types it: an object (channel -> value), a list of them, or nothing.
StateValues = dict[str, Any] | list[Any] | None


class StateUpdate(Body):
    values: StateValues = None
    command: dict[str, Any] | None = None
    as_node: str | None = None


class Superstep(Body):
    updates: list[StateUpdate]


class ThreadTTL(Body):
    """A thread's time to live in minutes; when it has passed, the sweeper deletes the thread."""

    ttl: float = Field(gt=0, le=MAX_TTL_MINUTES)
    strategy: Literal["delete"] = "delete"


def _ttl(value: Any) -> Any:
    return {"ttl": value} if isinstance(value, (int, float)) and not isinstance(value, bool) else value


TTL = Annotated[ThreadTTL, BeforeValidator(_ttl)]


class ThreadCreate(Body):
    thread_id: str | None = None
    metadata: WrittenMetadata = None
    if_exists: IfExists = "raise"
    supersteps: list[Superstep] | None = None
    ttl: TTL | None = None


class ThreadPatch(Body):
    metadata: WrittenMetadata = None
    ttl: TTL | None = None


class ThreadSearch(Body):
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    ids: list[str] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Limit
    offset: int = Offset
    sort_by: Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"] | None = None
    sort_order: SortOrder | None = None
    select: list[ThreadField] | None = None
    # alias -> path, e.g. {"last": "values.messages[-1].content"}: each thread gets `extracted` (api/extract.py)
    extract: Annotated[
        dict[str, str] | None, AfterValidator(lambda paths: check_extract(paths, frozenset(get_args(ThreadField))))
    ] = None


class ThreadCount(Body):
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None


class ThreadStateUpdate(Body):
    values: StateValues = None
    as_node: str | None = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = None


class CheckpointQuery(Body):
    checkpoint: CheckpointRef
    subgraphs: bool = False


class HistoryQuery(Body):
    limit: int = Limit
    before: BeforeRef | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: CheckpointRef | None = None


class Send(Body):
    """A node to run with an input of its own (langgraph's Send)."""

    node: str
    input: Any


class Command(Body):
    update: dict[str, Any] | list[Any] | None = None
    resume: Any = None
    goto: Send | str | list[Send | str] | None = None


def _checkpoint_id(value: str | None) -> str | None:
    if value is not None:
        try:
            uuid.UUID(value)
        except ValueError:
            raise ValueError(f"must be a UUID, got {value!r}") from None
    return value


Durability = Literal["sync", "async", "exit"]


def durability_of(durability: Durability | None, checkpoint_during: bool | None) -> Durability | None:
    """`checkpoint_during` is durability's older spelling (older SDKs send it): false keeps only the final
    checkpoint, as "exit" does; `durability` wins when both are given."""
    if durability is None and checkpoint_during is not None:
        return "async" if checkpoint_during else "exit"
    return durability


class RunCreate(Body):
    assistant_id: str
    input: Any = None
    command: Command | None = None
    checkpoint: CheckpointRef | None = None
    # A checkpoint id is a UUID: anything else is refused (as langgraph-api), not a run that fails on an
    # unknown checkpoint.
    checkpoint_id: Annotated[str | None, AfterValidator(_checkpoint_id)] = None
    metadata: WrittenMetadata = None
    config: RunnableConfig | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    stream_mode: StreamMode | list[StreamMode] = Field(default_factory=lambda: ["values"])
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    feedback_keys: list[str] | None = None
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] = "delete"
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    after_seconds: float | None = Field(default=None, ge=0, le=MAX_DELAY_SECONDS)
    durability: Durability | None = None
    checkpoint_during: bool | None = None

    def payload(self) -> dict[str, Any]:
        data = self.model_dump(exclude_none=False, exclude={"checkpoint_during"})
        data["durability"] = durability_of(self.durability, self.checkpoint_during)
        if isinstance(data["stream_mode"], str):
            data["stream_mode"] = [data["stream_mode"]]
        if not data["stream_mode"]:
            data["stream_mode"] = ["values"]  # an empty list is the default, as langgraph-api reads it
        if data["command"] is not None:
            data["command"] = {k: v for k, v in data["command"].items() if v is not None}
        return data


# At least one run, as langgraph-api has it.
RunBatch = Annotated[list[RunCreate], Field(min_length=1)]


class StorePut(Body):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    index: Literal[False] | list[str] | None = None
    ttl: float | None = Field(default=None, ge=0, le=MAX_TTL_MINUTES)


class StoreDelete(Body):
    namespace: list[str] | None = None
    key: str


class StoreSearch(Body):
    namespace_prefix: list[str] | None = None
    filter: dict[str, Any] | None = None
    limit: int = Limit
    offset: int = Offset
    query: str | None = None
    refresh_ttl: bool | None = None


class StoreNamespaces(Body):
    prefix: list[str] | None = None
    suffix: list[str] | None = None
    max_depth: int | None = Field(default=None, ge=1, le=1000)
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Offset


class RunsCancel(Body):
    thread_id: str | None = None
    run_ids: list[str] | None = None
    status: Literal["pending", "running", "all"] | None = None


class ThreadsPrune(Body):
    thread_ids: list[str]  # may be empty: nothing pruned, as langgraph-api answers
    strategy: Literal["delete", "keep_latest"] = "delete"
