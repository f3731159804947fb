"""/runs/crons and /threads/{id}/runs/crons: create (for a thread or stateless), get, update, delete, search, count.

A cron stores the run it creates (`payload`: input, config, context, stream modes, ...) and when it fires next
(`next_run_date`, UTC). The scheduler in aegra_server.crons creates the runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import Field

from aegra_server.api import schemas
from aegra_server.api.deps import ServicesDep
from aegra_server.api.http import JSONResponse, paged, refuse_configurable_and_context, validate_uuid
from aegra_server.api.schemas import Body, Limit, Offset, RunnableConfig, SortOrder, StreamMode, WrittenMetadata
from aegra_server.auth import AuthDep, RequestAuth, search_value
from aegra_server.crons import InvalidCron, next_run, zone
from aegra_server.graphs import NotAnAssistant
from aegra_server.services import Services
from aegra_server.storage.crons import utc

router = APIRouter(tags=["crons"])

_FIELDS = (
    "cron_id",
    "assistant_id",
    "thread_id",
    "on_run_completed",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "payload",
    "user_id",
    "next_run_date",
    "metadata",
    "enabled",
)
SelectField = Literal[
    "cron_id",
    "assistant_id",
    "thread_id",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "user_id",
    "payload",
    "next_run_date",
    "metadata",
    "now",
    "on_run_completed",
    "enabled",
]
MultitaskStrategy = Literal["reject", "interrupt", "rollback", "enqueue"]
OnCompletion = Literal["delete", "keep"]

# The body fields that describe the run each firing creates; they are stored in the cron's `payload`.
_RUN_FIELDS = (
    "input",
    "metadata",
    "config",
    "context",
    "webhook",
    "interrupt_before",
    "interrupt_after",
    "multitask_strategy",
    "stream_mode",
    "stream_subgraphs",
    "stream_resumable",
    "durability",
)


class _RunFields(Body):
    input: Any = None
    metadata: WrittenMetadata = None
    config: RunnableConfig | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    stream_mode: StreamMode | list[StreamMode] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: schemas.Durability | None = None
    checkpoint_during: bool | None = None  # deprecated spelling of durability

    def run_fields(self) -> dict[str, Any]:
        data = {k: v for k, v in self.model_dump(include=set(_RUN_FIELDS)).items() if v is not None}
        if durability := schemas.durability_of(self.durability, self.checkpoint_during):
            data["durability"] = durability
        return data


class ThreadCronCreate(_RunFields):
    assistant_id: str
    schedule: str
    multitask_strategy: MultitaskStrategy | None = None
    end_time: datetime | None = None
    enabled: bool = True
    timezone: str | None = None


class CronCreate(ThreadCronCreate):
    on_run_completed: OnCompletion = "delete"


class CronPatch(_RunFields):
    schedule: str | None = None
    end_time: datetime | None = None
    on_run_completed: OnCompletion | None = None
    enabled: bool | None = None
    timezone: str | None = None


class CronSearch(Body):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Limit
    offset: int = Offset
    sort_by: (
        Literal["cron_id", "assistant_id", "thread_id", "created_at", "updated_at", "next_run_date", "end_time"] | None
    ) = None
    sort_order: SortOrder | None = None
    select: list[SelectField] | None = Field(default=None)


class CronCount(Body):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None


def _public(row: dict[str, Any]) -> dict[str, Any]:
    data = {k: row.get(k) for k in _FIELDS}
    if isinstance(data["payload"], dict) and "auth" in data["payload"]:
        # The creator's user goes to the runs the cron fires (aegra_server.auth), not to API readers.
        data["payload"] = {k: v for k, v in data["payload"].items() if k != "auth"}
    return data


def _invalid(exc: InvalidCron) -> HTTPException:
    return HTTPException(422, str(exc))


def _check(schedule: str | None, timezone: str | None) -> None:
    """422 for an unknown time zone or a bad expression, before anything is written."""
    try:
        zone(timezone)
        if schedule is not None:
            next_run(schedule, timezone, datetime.now(UTC))
    except InvalidCron as exc:
        raise _invalid(exc) from None


def _end_time(value: datetime | None) -> datetime | None:
    """`end_time` in UTC, as it is stored; 422 when that falls outside years 1-9999 (9999-12-31T23:59:59-01:00)."""
    try:
        return utc(value)
    except OverflowError:
        message = f"end_time is out of range: {value.isoformat()} in UTC is not between years 1 and 9999"
        raise HTTPException(422, message) from None


async def _create(services: Services, auth: RequestAuth, thread_id: str | None, body: ThreadCronCreate) -> JSONResponse:
    refuse_configurable_and_context(body.config, body.context)
    try:
        next_run_date = services.crons.next_run_date(body.schedule, body.timezone)
    except InvalidCron as exc:
        raise _invalid(exc) from None
    end_time = _end_time(body.end_time)
    if body.webhook:
        await services.runs.webhooks.policy.check(body.webhook)  # refused now, not at every firing
    # A graph name stands for its default assistant; an unknown one is a 404 from the repository.
    try:
        assistant_id = services.runs.assistant_id_of(body.assistant_id)
    except NotAnAssistant as exc:  # langgraph-api: a 404 here, where a run's is a 422
        raise HTTPException(404, str(exc)) from None
    stateless = thread_id is None
    payload = {"assistant_id": assistant_id, **body.run_fields()}
    metadata = body.metadata
    thread_filter = None
    if auth.enabled:
        # The handler may stamp metadata (an owner, say); what it leaves in `value` is what is stored.
        value = {
            "payload": payload,
            "schedule": body.schedule,
            "cron_id": None,
            "thread_id": thread_id,
            "user_id": auth.user.identity if auth.user else None,
            "end_time": body.end_time,
            "metadata": dict(body.metadata or {}),
        }
        await auth.check("crons", "create", value)
        metadata = value.get("metadata")
        if thread_id is not None:
            # A cron on a thread runs on it: the caller must be allowed to create runs there.
            thread_filter = await auth.check(
                "threads", "create_run", {"thread_id": thread_id, "assistant_id": assistant_id, "metadata": {}}
            )
        payload = {**payload, "auth": auth.run_context()}
    row = await services.repos.crons.create(
        assistant_id=assistant_id,
        thread_id=thread_id,
        schedule=body.schedule,
        timezone=body.timezone,
        payload=payload,
        metadata=metadata,
        user_id=auth.user.identity if auth.enabled and auth.user else None,
        thread_filter=thread_filter,
        on_run_completed=body.on_run_completed if stateless and isinstance(body, CronCreate) else None,
        enabled=body.enabled,
        end_time=end_time,
        next_run_date=next_run_date,
    )
    services.crons.wake()
    return JSONResponse(_public(row))


@router.post("/threads/{thread_id}/runs/crons")
async def create_thread_cron(
    thread_id: str, body: ThreadCronCreate, services: ServicesDep, auth: AuthDep
) -> JSONResponse:
    return await _create(services, auth, validate_uuid(thread_id, "thread_id"), body)


@router.post("/runs/crons")
async def create_cron(body: CronCreate, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    return await _create(services, auth, None, body)


@router.post("/runs/crons/search")
async def search_crons(body: CronSearch, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    filters = body.model_dump(exclude={"select"})
    if body.assistant_id:
        filters["assistant_id"] = services.runs.assistant_id_of(body.assistant_id)
    auth_filter = await auth.check("crons", "search", search_value(filters))
    page = await services.repos.crons.search(**filters, auth_filter=auth_filter)
    items = [_public(r) for r in page.items]
    if body.select:
        now = services.crons.now()
        items = [{k: now if k == "now" else item[k] for k in body.select} for item in items]
    return paged(page, items)


@router.post("/runs/crons/count")
async def count_crons(body: CronCount, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    filters = body.model_dump()
    if body.assistant_id:
        filters["assistant_id"] = services.runs.assistant_id_of(body.assistant_id)
    auth_filter = await auth.check("crons", "search", search_value(filters))
    return JSONResponse(await services.repos.crons.count(**filters, auth_filter=auth_filter))


@router.get("/runs/crons/{cron_id}")
async def get_cron(cron_id: str, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    validate_uuid(cron_id, "cron_id")
    auth_filter = await auth.check("crons", "read", {"cron_id": cron_id})
    return JSONResponse(_public(await services.repos.crons.get(cron_id, auth_filter=auth_filter)))


@router.patch("/runs/crons/{cron_id}")
async def update_cron(cron_id: str, body: CronPatch, services: ServicesDep, auth: AuthDep) -> JSONResponse:
    validate_uuid(cron_id, "cron_id")
    given = body.model_fields_set
    if not given:  # before the cron is looked up, as langgraph-api
        raise HTTPException(400, "the body names no field to change (schedule, enabled, end_time, input, ...)")
    _check(body.schedule, body.timezone)
    end_time = _end_time(body.end_time)
    refuse_configurable_and_context(body.config, body.context)
    if body.webhook:
        await services.runs.webhooks.policy.check(body.webhook)
    value = {"cron_id": cron_id, "payload": body.run_fields() or None, "schedule": body.schedule}
    if body.metadata is not None:
        value["metadata"] = dict(body.metadata)
    auth_filter = await auth.check("crons", "update", value)
    if isinstance(value.get("metadata"), dict):
        body = body.model_copy(update={"metadata": value["metadata"]})

    def change(cron: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        run_fields = body.run_fields()
        for key in ("schedule", "enabled"):
            if getattr(body, key) is not None:
                changes[key] = getattr(body, key)
        if "timezone" in given:
            changes["timezone"] = body.timezone
        if "end_time" in given:
            changes["end_time"] = end_time
        if body.on_run_completed is not None and cron["thread_id"] is None:
            changes["on_run_completed"] = body.on_run_completed
        if body.metadata is not None:
            changes["metadata"] = {**cron["metadata"], **body.metadata}
            run_fields["metadata"] = changes["metadata"]
        if run_fields:
            changes["payload"] = {**cron["payload"], **run_fields}
        schedule = changes.get("schedule", cron["schedule"])
        timezone = changes.get("timezone", cron["timezone"])
        rescheduled = schedule != cron["schedule"] or timezone != cron["timezone"]
        if rescheduled or (changes.get("enabled") and not cron["enabled"]):
            # A new schedule, or a cron switched back on, counts from now: no catching up on missed runs.
            changes["next_run_date"] = services.crons.next_run_date(schedule, timezone)
        return changes

    try:
        row = await services.repos.crons.update(cron_id, change, auth_filter=auth_filter)
    except InvalidCron as exc:
        raise _invalid(exc) from None
    services.crons.wake()
    return JSONResponse(_public(row))


@router.delete("/runs/crons/{cron_id}", status_code=204)
async def delete_cron(cron_id: str, services: ServicesDep, auth: AuthDep) -> Response:
    validate_uuid(cron_id, "cron_id")
    auth_filter = await auth.check("crons", "delete", {"cron_id": cron_id})
    await services.repos.crons.delete(cron_id, auth_filter=auth_filter)
    return Response(status_code=204)
