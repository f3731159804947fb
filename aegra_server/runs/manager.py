"""The run engine: a row first (pending), then work claimed by one server process.

Runs are claimed from the database (`RunRepository.claim`), so any number of server processes on one Postgres
share the work: runs of one thread execute one at a time in creation order, runs of different threads in
parallel, up to `max_concurrent_runs` per process. The creating process claims the run at once when the thread
is free, so the common case costs no extra round trip. The owner renews its lease while the graph runs; a run
whose owner died is claimed by another process after the lease expires and resumes from its last checkpoint.

Each executing run writes its events to a RunStream in memory; on Postgres and with SQLite workers they are
also persisted (EventPersister) so readers on other processes can follow, resume and replay them, and
thread streams there can show them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from langgraph.checkpoint.base.id import uuid6
from langgraph.types import StateSnapshot
from sqlalchemy import text

from aegra_server.auth import graph_configurable
from aegra_server.configurable import for_graph, mirrored
from aegra_server.graphs import GraphRegistry, NotAnAssistant, default_assistant_id
from aegra_server.observability.runs import RunObserver
from aegra_server.runs.bus import LocalBus
from aegra_server.runs.events import END, EventPersister, follow_persisted, run_of_signal
from aegra_server.runs.execute import Outcome, execute, run_output
from aegra_server.runs.stream import (
    EPOCH,
    KEY_SPAN,
    THREAD_LOG_EVENTS,
    Event,
    RunStream,
    StreamRegistry,
    ThreadLog,
    run_done,
    thread_key,
)
from aegra_server.runs.state_updates import StateUpdates
from aegra_server.runs.webhooks import WebhookSender
from aegra_server.serde import dumps, error_of, jsonable
from aegra_server.settings import Settings
from aegra_server.state import interrupts_by_task, status_of
from aegra_server.storage import write_fence
from aegra_server.storage.checkpoints import delete_after
from aegra_server.storage.common import NotFound, new_id
from aegra_server.storage.connections import connection_lost, log_failure
from aegra_server.storage.database import utcnow
from aegra_server.storage.repositories import Repositories
from aegra_server.storage.runs import ACTIVE, TakenOver
from aegra_server.storage.threads import graph_config_of

log = logging.getLogger("aegra.runs")

TERMINAL = {"success", "error", "interrupted", "timeout"}
# How often an idle process looks for work it was not told about (expired leases, missed signals).
POLL_SECONDS = 1.0
# How long a lease renewal past the lease's deadline may take before the run stops anyway (see _lapse_loop).
CONFIRM_SECONDS = 1.0
# How long the thread of a stateless run executed for another process's client is kept for that process to read
# its output and delete it, before the sweeper deletes it anyway (see _left_to_creator).
TEMPORARY_THREAD_GRACE_SECONDS = 300.0
# Keys of a run's kwargs the server keeps for itself: the run's user, the process a stateless run's client waits on.
PRIVATE_KWARGS = ("auth", "creator")
# The last event of a run stopped because its thread is being deleted (cancel action "delete": an interrupt
# otherwise), as langgraph-api's stream of it ends, finding the run gone; with the reason added.
RUN_DELETED = {"error": "HTTPException", "message": "404: Run not found (its thread was deleted)"}
# How many cancels of runs not executing here are remembered (every process hears every cancel signal).
EARLY_CANCELS_KEPT = 1024


@dataclass
class Job:
    """A run this process executes."""

    run: dict[str, Any]
    graph_id: str
    config: dict[str, Any]
    context: dict[str, Any]
    stream: RunStream
    temporary: bool
    attempt: int = 1
    done: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: Outcome | None = None
    task: asyncio.Task | None = None
    cancel_action: str | None = None
    cancel_reason: str | None = None  # how the cancel was asked for (see cancel_error)
    marker: str | None = None  # a checkpoint id older than anything this run writes (for rollback)
    started_at: datetime = field(default_factory=utcnow)  # when this process took the run up
    events_ended: bool = False
    taken_over: bool = False  # another process holds the run now (its lease ran out here): stop, do not finish
    # Loop time by which this process must have renewed its lease (set where the lease is taken or renewed,
    # before the database call: the stored lease ends no earlier). Past it, on a shared database, the run may
    # be another process's: its attempt stops and its writes are refused (lapsed) until the lease is its own again.
    lease_deadline: float = float("inf")
    lapsed: bool = False
    attempt_task: asyncio.Task | None = None  # the graph's current execution

    @property
    def run_id(self) -> str:
        return self.run["run_id"]

    @property
    def thread_id(self) -> str:
        return self.run["thread_id"]


def is_temporary(kwargs: dict[str, Any]) -> bool:
    """A stateless run whose thread goes when it ends (on_completion=delete, the default)."""
    return bool(kwargs.get("stateless")) and kwargs.get("on_completion", "delete") == "delete"


def public_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A run's kwargs as the API and webhooks show them."""
    return {k: v for k, v in kwargs.items() if k not in PRIVATE_KWARGS}


def cancel_error(action: str, reason: str | None) -> dict[str, str]:
    """A cancelled run's thread error, as langgraph-api records the exception that stopped it: UserRollback or
    UserInterrupt, with how the cancel was asked for or its default message."""
    if action == "rollback":
        return {"error": "UserRollback", "message": reason or "User requested rollback of the run"}
    return {"error": "UserInterrupt", "message": reason or "User interrupted the run"}


def merge_config(base: dict[str, Any] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    """Run config over assistant config; `configurable` and `metadata` merge key by key."""
    merged = {**(base or {}), **(override or {})}
    for key in ("configurable", "metadata"):
        merged[key] = {**(base or {}).get(key, {}), **(override or {}).get(key, {})}
    return merged


class RunManager:
    def __init__(
        self,
        repos: Repositories,
        registry: GraphRegistry,
        checkpointer,
        store,
        settings: Settings,
        bus=None,
        observer: RunObserver | None = None,
        webhooks: WebhookSender | None = None,
    ) -> None:
        self.repos = repos
        self.registry = registry
        self.checkpointer = checkpointer
        self.store = store
        self.settings = settings
        self.bus = bus or LocalBus()
        # Log correlation, spans and metrics for each run (aegra_server/observability).
        self.observer = observer or RunObserver()
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.state_updates = StateUpdates(self)
        self.streams = StreamRegistry()
        self.webhooks = webhooks or WebhookSender()
        self.persister = EventPersister(repos.runs, self.bus) if self.bus.shared else None
        self._jobs: dict[str, Job] = {}
        self._ended: dict[str, asyncio.Event] = {}
        self._wake = asyncio.Event()
        # Whether runs may wait in the database for this process to claim them (created when it was full, or
        # queued behind their thread's run): only then does a finished run send the claim loop looking.
        self._backlog = True
        self._accepting = True
        self._stop_by: float | None = None  # when the grace period of a requested shutdown ends (loop time)
        self._loops: list[asyncio.Task] = []
        # Runs of other processes whose events are being copied into a thread log here: the copying tasks.
        self._copies: dict[str, asyncio.Task] = {}
        # `http.disable_webhooks`: runs keep their `webhook` but nothing is sent.
        self.webhooks_enabled = True
        # Cancellations started on a signal or for a client that left, held until done (asyncio keeps only weak
        # references to tasks).
        self._detached: set[asyncio.Task] = set()
        # Cancels signalled for runs not (yet) executing here, newest last: a run this process has just claimed,
        # whose job does not exist yet, takes its cancel from here (the claim read the row before it was asked).
        self._early_cancels: OrderedDict[str, tuple[str, str | None]] = OrderedDict()  # run_id: (action, reason)
        # Waiters for the outcome of runs not started yet, told when this process starts one (see wait_for).
        self._awaiting_start: defaultdict[str, list[asyncio.Future]] = defaultdict(list)

    @property
    def lease_seconds(self) -> float:
        return self.settings.run_lease_seconds

    # ---- life cycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start claiming. A sole process first takes back whatever a previous process left unfinished."""
        self.bus.listen("aegra_wake", lambda _: self._wake.set())
        self.bus.listen("aegra_cancel", self._on_cancel_signal)
        self.bus.listen("aegra_events", self._on_events_signal)
        self.state_updates.start()
        await self.bus.start()
        if not self.bus.shared:
            await self.repos.runs.release("*")
        self._loops = [asyncio.create_task(self._claim_loop()), asyncio.create_task(self._lease_loop())]
        if self.bus.shared:
            self._loops.append(asyncio.create_task(self._lapse_loop()))

    def shutdown_requested(self) -> None:
        """The process was asked to stop (SIGTERM): the grace period counts from now, while the HTTP server still
        waits for open requests, rather than from `shutdown`, which comes after them. Runs still start meanwhile:
        a request on an open connection may be waiting for one."""
        if self._stop_by is None:
            self._stop_by = asyncio.get_running_loop().time() + self.settings.shutdown_grace_seconds

    async def shutdown(self) -> None:
        """Stop claiming, let running runs finish within the grace period, hand the rest back to be resumed."""
        self._accepting = False
        self._wake.set()
        self.shutdown_requested()
        running = [job.done.wait() for job in self._jobs.values()]
        if running:
            left = max(0.0, self._stop_by - asyncio.get_running_loop().time())
            await asyncio.wait([asyncio.ensure_future(w) for w in running], timeout=left)
        left = list(self._jobs.values())
        for job in left:
            if job.task is not None:
                job.task.cancel()
        if left:
            await asyncio.gather(*(j.task for j in left if j.task), return_exceptions=True)
            await self.repos.runs.release(self.instance_id, [j.run_id for j in left])
            await self.bus.notify("aegra_wake")
            log.info("handed %d unfinished run(s) back for another process to resume", len(left))
        tasks = [*self._loops, *self._copies.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.state_updates.stop()
        if self.persister is not None:
            await self.persister.close()
        await self.webhooks.close()
        await self.bus.stop()

    # ---- creating -------------------------------------------------------------------------------------------

    def assistant_id_of(self, assistant_id: str) -> str:
        """A graph name stands for that graph's default assistant; anything else must be an id."""
        if assistant_id in self.registry:
            return default_assistant_id(assistant_id)
        try:
            uuid.UUID(assistant_id)
        except ValueError:
            raise NotAnAssistant(assistant_id, self.registry.ids) from None
        return assistant_id

    async def create(
        self,
        thread_id: str | None,
        payload: dict[str, Any],
        *,
        thread_filter: dict[str, Any] | None = None,
        webhook_checked: bool = False,
        awaited: bool = False,
    ) -> dict[str, Any]:
        """Create a run (pending); this process starts it at once when the thread is free. Returns the row.

        `thread_filter` is the caller's authorization on the thread (a thread it hides is NotFound, before any
        multitask strategy touches that thread's runs). `payload["auth"]` (RequestAuth.run_context) is the
        user the graph sees; it is kept with the run so a run resumed elsewhere still has it. A webhook the
        policy refuses is WebhookRefused, before anything is written (unless `webhook_checked`: a cron's, checked
        when the cron was made, must not cost a firing over a passing DNS failure; delivery checks it again).
        `awaited`: the creating request answers with the run's output or events (see _left_to_creator).
        """
        if payload.get("webhook") and not webhook_checked:
            await self.webhooks.policy.check(payload["webhook"])
        stateless = thread_id is None
        strategy = payload.get("multitask_strategy") or "enqueue"
        if stateless:
            thread_id = new_id()
        kwargs = {k: v for k, v in payload.items() if k not in ("metadata", "assistant_id", "multitask_strategy")}
        kwargs["config"], kwargs["context"] = mirrored(kwargs.get("config"), kwargs.get("context"))
        kwargs["stateless"] = stateless
        if awaited and self.bus.shared and is_temporary(kwargs):
            kwargs["creator"] = self.instance_id  # where its client waits: see _left_to_creator
        # The creating request's id (and span, when tracing) go with the run to wherever it executes.
        kwargs.update(self.observer.origin())
        after = float(payload.get("after_seconds") or 0)
        row = {
            "run_id": new_id(),
            "thread_id": thread_id,
            "assistant_id": self.assistant_id_of(payload["assistant_id"]),
            "metadata": payload.get("metadata") or {},
            "kwargs": kwargs,
            "multitask_strategy": strategy,
        }
        leased_at = asyncio.get_running_loop().time()
        row, assistant = await self.repos.runs.create(
            row,
            create_thread=stateless or payload.get("if_not_exists") == "create",
            reject_if_busy=strategy == "reject",
            claim_for=self.instance_id if self._has_capacity() else None,
            lease_seconds=self.lease_seconds,
            after_seconds=after,
            thread_filter=thread_filter,
        )
        if assistant["graph_id"] not in self.registry:
            await self.repos.runs.finish(row, status="error", thread_status="error", values=None, interrupts=None)
            raise NotFound(f"graph {assistant['graph_id']!r} of assistant {assistant['assistant_id']} is not loaded")
        if strategy in ("interrupt", "rollback") and not stateless:
            await self._supersede(row, strategy)
        if row["owner"] == self.instance_id:
            self._spawn(row, assistant, leased_at)
            # Answered as created, pending, as langgraph-api answers; this process has already started it.
            row = {**row, "status": "pending"}
        else:
            self._backlog = True
            if after > 0:
                asyncio.get_running_loop().call_later(after, self._wake.set)
            self._wake.set()
            if self.bus.shared:
                await self.bus.notify("aegra_wake")
        return row

    async def _supersede(self, run: dict[str, Any], action: str) -> None:
        """multitask_strategy interrupt or rollback, as langgraph-api orders it: the new run is stored first
        (pending, behind its thread's turn), then every run of the thread created before it stops, pending ones
        included. A burst of such runs thus leaves the newest, where cancelling first and storing after let every
        one of them run in turn."""
        earlier = [
            active for active in await self.repos.runs.active(thread_id=run["thread_id"])
            if (active["created_at"], active["run_id"]) < (run["created_at"], run["run_id"])
        ]
        await self._cancel_all(earlier, action)

    def _has_capacity(self) -> bool:
        return self._accepting and len(self._jobs) < self.settings.max_concurrent_runs

    def _spawn(
        self, row: dict[str, Any], assistant: dict[str, Any], leased_at: float, attempt: int = 1, first_seq: int = 0
    ) -> Job:
        kwargs = row["kwargs"]
        early = self._early_cancels.pop(row["run_id"], None)
        job = Job(
            run=row,
            graph_id=assistant["graph_id"],
            config=merge_config(assistant["config"], kwargs.get("config")),
            context={**(assistant.get("context") or {}), **(kwargs.get("context") or {})},
            stream=self.streams.open(
                row["run_id"], bool(kwargs.get("stream_resumable")), row["thread_id"], first_seq, row["created_at"]
            ),
            temporary=is_temporary(kwargs),
            attempt=attempt,
            cancel_action=row.get("cancel_action") or (early[0] if early else None),
            cancel_reason=early[1] if early else None,
            lease_deadline=leased_at + self.lease_seconds,
        )
        if self.persister is not None:
            job.stream.sink = self.persister.sink(job.run_id, job.thread_id)
        job.stream.append("metadata", dumps({"run_id": job.run_id, "attempt": attempt}))
        self._jobs[job.run_id] = job
        for waiter in self._awaiting_start.pop(job.run_id, ()):
            if not waiter.done():
                waiter.set_result(job)
        asyncio.create_task(self._run(job))
        return job

    # ---- claiming -------------------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while self._accepting:
            self._wake.clear()
            try:
                while True:
                    if not self._has_capacity():
                        self._backlog = True  # whatever waits now starts when a run of ours ends
                        break
                    self._backlog = False  # set again by any run created meanwhile without a claim
                    leased_at = asyncio.get_running_loop().time()
                    row = await self.repos.runs.claim(self.instance_id, self.lease_seconds)
                    if row is None:
                        break
                    self._backlog = True  # there may be more
                    await self._start_claimed(row, leased_at)
            except Exception as exc:
                log_failure(log, logging.ERROR, "claiming runs failed; trying again", exc)
                if connection_lost(exc):
                    await self._database_back()  # rather than claim runs it could not start, each costing an attempt
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            except TimeoutError:
                pass

    async def _start_claimed(self, row: dict[str, Any], leased_at: float) -> None:
        if row["run_id"] in self._jobs:
            return  # executing here: its lease ran out while the database was unreachable, and the claim renewed it
        try:
            assistant = await self.repos.assistants.get(row["assistant_id"])
        except NotFound:
            # Deleted since the run was made: its delete stops the runs it finds, and this one came in between. It
            # ends as that delete ends them (as langgraph-api stops the runs of an assistant it deletes), not in error.
            await self.repos.runs.finish(row, status="interrupted", thread_status="idle", values=None, interrupts=None)
            await self._thread_as_its_checkpoint(row["thread_id"])
            await self._announce_end(row["run_id"])
            return
        attempt, first_seq = 1, 0
        if row.pop("resumed", False):
            # Its process died or handed it back: it goes on where its checkpoints end (see _kwargs_to_resume).
            kwargs = await self._kwargs_to_resume(row)
            if self.persister is not None:
                first_seq = await self.repos.runs.last_event_seq(row["run_id"]) + 1
            # Counted last: a step above failing (the database went away) is not an attempt of the run's.
            leased_at = asyncio.get_running_loop().time()
            attempt = await self.repos.runs.next_attempt(self.instance_id, row["run_id"], self.lease_seconds)
            if attempt is None:
                return  # cancelled or taken over since the claim
            if attempt > self.settings.run_max_attempts:
                await self._give_up(row, attempt - 1)
                return
            row = {**row, "kwargs": kwargs}
            log.info("resuming run %s (attempt %d)", row["run_id"], attempt)
        self._spawn(row, assistant, leased_at, attempt, first_seq)

    async def _give_up(self, row: dict[str, Any], attempts: int) -> None:
        limit = self.settings.run_max_attempts
        message = (
            f"the run was started {attempts} times and its server process stopped each time "
            f"(AEGRA_RUN_MAX_ATTEMPTS={limit}); look for crashes, out-of-memory kills or restarts in the server's log"
        )
        log.error("run %s: %s", row["run_id"], message)
        error = {"error": "RuntimeError", "message": message}
        await self.repos.runs.finish(row, status="error", thread_status="error", values=None, interrupts=None, error=error)
        await self._announce_end(row["run_id"])

    async def _kwargs_to_resume(self, row: dict[str, Any]) -> dict[str, Any]:
        """The kwargs a run started before goes on with. Once its graph has checkpointed (its config's metadata,
        run_id, is in every checkpoint it writes), it continues from its last checkpoint, not from its input
        (which would run its first step twice) nor from a checkpoint it was started at."""
        config = {"configurable": {"thread_id": row["thread_id"]}}
        # Read to its end (one item): a listing left half-read holds its database connection until collected.
        if [_ async for _ in self.checkpointer.alist(config, filter={"run_id": row["run_id"]}, limit=1)]:
            return {**row["kwargs"], "input": None, "command": None, "checkpoint": None, "checkpoint_id": None}
        return row["kwargs"]

    async def _lease_loop(self) -> None:
        """Renew the leases of the runs this process executes, and act on cancels it may have missed."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self._renew(list(self._jobs.values()))
                for row in await self.repos.runs.active(run_ids=list(self._jobs)) if self._jobs else []:
                    if row.get("cancel_action") and row["run_id"] in self._jobs:
                        await self.cancel(row["run_id"], action=row["cancel_action"])
            except Exception as exc:
                log_failure(log, logging.ERROR, "renewing leases failed", exc)

    async def _renew(self, jobs: list[Job]) -> None:
        """Renew the leases of `jobs`. One another process holds now stops here: that one took it over while this
        process could not renew it."""
        renewing_at = asyncio.get_running_loop().time()
        held, taken = await self.repos.runs.renew(self.instance_id, [job.run_id for job in jobs], self.lease_seconds)
        for job in jobs:
            if job.run_id in held:
                job.lease_deadline = max(job.lease_deadline, renewing_at + self.lease_seconds)
            elif job.run_id in taken and job.task is not None:
                job.taken_over = True
                job.task.cancel()

    async def _renew_late(self, jobs: list[Job]) -> None:
        """Renew leases whose deadline passed (the process stalled, or the database was away), giving the database
        CONFIRM_SECONDS: a run stays this process's if nobody took it over meanwhile."""
        try:
            await asyncio.wait_for(self._renew(jobs), CONFIRM_SECONDS)
        except Exception as exc:
            log_failure(log, logging.WARNING, "renewing leases past their deadline failed", exc)

    async def _lapse_loop(self) -> None:
        """On a shared database: stop the attempt of every run whose lease this process could not renew in time
        (cut off from the database, or stalled). Another process may have resumed the run; this one must not
        run its steps beside it, nor write what they produce (storage.write_fence). Once the database answers,
        the run goes on here from its last checkpoint if it is still this process's (see _attempts), or is let go.
        """
        loop = asyncio.get_running_loop()
        while True:
            # A lease taken or renewed after this point ends no earlier than a full lease from now: waking at
            # the earliest deadline known now misses none.
            deadlines = [job.lease_deadline for job in self._jobs.values() if not job.lapsed]
            await asyncio.sleep(max(0.0, min(deadlines, default=loop.time() + self.lease_seconds) - loop.time()))
            due = [job for job in self._jobs.values() if not job.lapsed and job.lease_deadline <= loop.time()]
            if due:
                await self._renew_late(due)
            for job in due:
                if not job.taken_over and job.lease_deadline <= loop.time():
                    log.warning("run %s: its lease could not be renewed in time; it stops until it can", job.run_id)
                    job.lapsed = True
                    if job.attempt_task is not None:
                        job.attempt_task.cancel()

    async def _holds_lease(self, job: Job) -> None:
        """The write guard of a run's attempt on a shared database (storage.write_fence): a write past the
        lease's deadline waits for a renewal first."""
        loop = asyncio.get_running_loop()
        if not (job.lapsed or job.taken_over) and loop.time() >= job.lease_deadline:
            await self._renew_late([job])
        if job.lapsed or job.taken_over or loop.time() >= job.lease_deadline:
            raise write_fence.LeaseLost(f"run {job.run_id}: this process's lease on it ran out")

    # ---- executing ------------------------------------------------------------------------------------------

    def _graph_config(self, job: Job, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        kwargs = job.run["kwargs"] if kwargs is None else kwargs
        config = merge_config(job.config, None)
        configurable = config["configurable"]
        checkpoint = kwargs.get("checkpoint") or {}
        configurable.update({k: v for k, v in checkpoint.items() if k != "thread_id" and v is not None})
        if kwargs.get("checkpoint_id"):
            configurable["checkpoint_id"] = kwargs["checkpoint_id"]
        configurable.update(
            thread_id=job.thread_id,
            run_id=job.run_id,
            assistant_id=job.run["assistant_id"],
            graph_id=job.graph_id,
        )
        configurable.update(graph_configurable(kwargs.get("auth")))
        # As langgraph-api: `user_id` is the one the run, thread or assistant set, else the caller's ("" without auth);
        # `langgraph_request_id` the creating request's.
        if not configurable.get("user_id"):
            configurable["user_id"] = configurable["langgraph_auth_user_id"]
        if kwargs.get("request_id") and not configurable.get("langgraph_request_id"):
            configurable["langgraph_request_id"] = kwargs["request_id"]
        config["metadata"].update(job.run["metadata"])
        config["metadata"].update(
            run_id=job.run_id,
            thread_id=job.thread_id,
            assistant_id=job.run["assistant_id"],
            graph_id=job.graph_id,
            run_attempt=job.attempt,
        )
        config["run_id"] = job.run_id
        return config

    async def _run(self, job: Job) -> None:
        config = self._graph_config(job)
        with self.observer.observe(job.run, job.graph_id, config, job.attempt) as observed:
            await self._execute(job, config)
            if job.outcome is not None:
                observed.status, observed.error = job.outcome.status, job.outcome.error

    async def _execute(self, job: Job, config: dict[str, Any]) -> None:
        job.marker = str(uuid6())
        try:
            async with self.registry.graph_scope(
                job.graph_id, config, checkpointer=self.checkpointer, store=self.store
            ) as graph:
                context = for_graph(graph, job.context)
                job.task = asyncio.create_task(self._attempts(job, graph, config, context))
                if job.cancel_action:  # cancelled while starting
                    job.task.cancel()
                timed_out = not (await asyncio.wait({job.task}, timeout=self.settings.run_timeout_seconds))[0]
                if timed_out:
                    job.task.cancel()
                try:
                    outcome = await job.task
                except asyncio.CancelledError:
                    if timed_out:
                        outcome = self._timed_out(job)
                    elif job.taken_over:
                        outcome = None
                    elif job.cancel_action is None:
                        return  # shutting down: the run is handed back, not finished
                    else:
                        if job.cancel_action == "delete":  # its followers must not take this for its end
                            job.stream.append("error", dumps(RUN_DELETED))
                        outcome = Outcome(status="interrupted")
                if outcome is None:
                    self._let_go(job)
                    return
                await self._finish(job, graph, config, outcome)
        except Exception as exc:
            log.exception("run %s failed outside the graph", job.run_id)
            error = error_of(exc)
            job.stream.append("error", dumps(error))
            await self._record(job, Outcome(status="error", error=error), "error", None, None)

    async def _attempts(self, job: Job, graph, config: dict[str, Any], context: Any) -> Outcome | None:
        """The run's graph execution. A lost database connection costs an attempt, not the run: once the database
        answers again the run goes on from its last checkpoint, as after a restart, up to AEGRA_RUN_MAX_ATTEMPTS
        (langgraph-api retries a run on such errors too). Its stream stays open meanwhile: followers see one run.
        None when another process took the run over while this one could not reach the database."""
        kwargs = job.run["kwargs"]
        loop = asyncio.get_running_loop()
        while True:
            outcome = await self._attempt(job, graph, kwargs, config, context)
            if outcome.status != "retry":
                return outcome
            await self._database_back()
            leased_at = loop.time()
            attempt = await self.repos.runs.next_attempt(self.instance_id, job.run_id, self.lease_seconds)
            if attempt is None:
                return None
            job.attempt, job.lapsed = attempt, False
            job.lease_deadline = max(job.lease_deadline, leased_at + self.lease_seconds)
            if attempt > self.settings.run_max_attempts:
                log.error("run %s lost its database connection %d times; it ends in error", job.run_id, attempt - 1)
                job.stream.append("error", dumps(outcome.error))
                return Outcome(status="error", values=outcome.values, error=outcome.error)
            kwargs = await self._kwargs_to_resume(job.run)
            config = self._graph_config(job, kwargs)
            log.info("resuming run %s after the database came back (attempt %d)", job.run_id, attempt)
            job.stream.append("metadata", dumps({"run_id": job.run_id, "attempt": attempt}))

    async def _attempt(self, job: Job, graph, kwargs: dict[str, Any], config: dict[str, Any], context: Any) -> Outcome:
        """One execution of the graph. On a shared database, as a task of its own whose checkpoint writes are
        guarded (storage.write_fence): a lapsed lease stops it (_lapse_loop) as a lost connection does, not the run.
        """
        if not self.bus.shared:  # nobody else can take the run over: no lease to lapse, nothing to guard
            return await execute(graph, kwargs, config, context, job.stream)
        attempting = True

        async def holds_lease() -> None:
            if attempting:  # a task that outlives the attempt (the graph's own, say) inherited it: inert then
                await self._holds_lease(job)

        async def guarded() -> Outcome:
            write_fence.guard(holds_lease)  # this task's context, and the graph's tasks
            return await execute(graph, kwargs, config, context, job.stream)

        if not job.lapsed:
            job.attempt_task = asyncio.create_task(guarded())
            try:
                return await job.attempt_task
            except asyncio.CancelledError:
                if not job.lapsed or asyncio.current_task().cancelling():
                    raise  # the run's own cancel, timeout or takeover
            finally:
                job.attempt_task, attempting = None, False
        return Outcome(status="retry", error=error_of(write_fence.LeaseLost(f"run {job.run_id}: its lease lapsed")))

    async def _database_back(self) -> None:
        """Wait until the database answers again, with the pooled connections the outage broke replaced."""
        delay = 0.1
        while True:
            try:
                await self.repos.db.read(lambda conn: conn.execute(text("SELECT 1")).scalar())
                pool = getattr(self.checkpointer, "conn", None)
                if hasattr(pool, "check"):  # psycopg's pool: its idle connections may all be dead
                    await pool.check()
                return
            except Exception as exc:
                if not connection_lost(exc):
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _let_go(self, job: Job) -> None:
        """Stop executing a run here without ending it: another process resumed it (its lease ran out while this
        one could not renew it) and finishes it; waiters here learn its end from the database."""
        log.warning("run %s was taken over by another process (its lease ran out here); it stops here", job.run_id)
        job.stream.handed_over = True
        written = self.persister.forget(job.run_id) if self.persister is not None else None
        job.stream.handed_over_at = job.stream.base if written is None else written
        self.streams.close(job.run_id)
        job.done.set()
        self._jobs.pop(job.run_id, None)
        # A thread stream here goes on with the events of the process that took the run over (perhaps all of them
        # written already: no signal would come).
        self._copy_into_thread_log(job.run_id, job.thread_id)

    def _timed_out(self, job: Job) -> Outcome:
        limit = self.settings.run_timeout_seconds
        error = {"error": "TimeoutError", "message": f"the run did not finish within {limit:g} s (AEGRA_RUN_TIMEOUT_SECONDS)"}
        log.warning("run %s stopped after %g s (AEGRA_RUN_TIMEOUT_SECONDS)", job.run_id, limit)
        job.stream.append("error", dumps(error))
        return Outcome(status="timeout", error=error)

    async def _finish(self, job: Job, graph, config: dict[str, Any], outcome: Outcome) -> None:
        kwargs = job.run["kwargs"]
        if job.cancel_action == "rollback" or (job.cancel_action and outcome.status == "interrupted"):
            await self._finish_cancelled(job, graph, outcome)
            return
        values = jsonable(outcome.values) if outcome.values is not None else None
        if isinstance(values, dict):
            values.pop("__interrupt__", None)  # LangGraph adds it to the last values chunk; it is not state
        interrupts: dict[str, Any] = {}
        thread_status = "error" if outcome.status in ("error", "timeout") else "idle"
        if outcome.status == "success" and (
            outcome.saw_interrupt or kwargs.get("interrupt_before") or kwargs.get("interrupt_after")
        ):
            snapshot = await graph.aget_state({"configurable": {"thread_id": job.thread_id}})
            if snapshot.next:
                thread_status = "interrupted"
                interrupts = interrupts_by_task(snapshot)
        await self._record(job, outcome, thread_status, values, interrupts)

    async def _finish_cancelled(self, job: Job, graph, outcome: Outcome) -> None:
        """A cancelled run leaves the thread as its checkpoints are (a rollback first drops the run's own), so the
        thread row, join and cancel?wait=1 show that state rather than nothing."""
        if job.cancel_action == "rollback":
            await delete_after(self.checkpointer, job.thread_id, job.marker)
        snapshot = await graph.aget_state({"configurable": {"thread_id": job.thread_id}})
        outcome.values = snapshot.values
        values = jsonable(snapshot.values)
        interrupts = interrupts_by_task(snapshot)
        # Nodes still to run (the one cut short, or an interrupt's): the thread can go on, as langgraph-api says.
        thread_status = status_of(snapshot)
        thread_error = cancel_error(job.cancel_action, job.cancel_reason)
        if job.cancel_action != "rollback":
            await self._record(job, outcome, thread_status, values, interrupts, thread_error=thread_error)
            return
        # The thread must not stay busy: record the end, then remove the run. Its last events go with its end
        # (as any run's): written after the run is gone they would be refused, and readers elsewhere would wait
        # for an end marker that never comes.
        events = await self.persister.take_rest(job.run_id) if self.persister is not None else None
        await self.repos.runs.finish(
            job.run, status="interrupted", thread_status=thread_status, values=values, interrupts=interrupts,
            thread_error=thread_error, events=events,
        )
        try:
            await self.repos.runs.delete(job.run_id)
        except NotFound:
            pass  # deleted meanwhile, with the run or its thread, once it had ended: gone either way
        await self._record(job, outcome, None, None, None, recorded=True)

    async def _record(
        self, job, outcome, thread_status, values, interrupts, recorded: bool = False, thread_error=None
    ) -> None:
        job.outcome = outcome
        more_waiting = True  # unless the final write says otherwise
        left_to_creator = self._left_to_creator(job.run)
        try:
            if not recorded:
                events = await self.persister.take_rest(job.run_id) if self.persister is not None else None
                more_waiting = await self._despite_outages(
                    lambda: self.repos.runs.finish(
                        job.run,
                        status=outcome.status,
                        thread_status=thread_status,
                        values=values,
                        interrupts=interrupts,
                        error=outcome.error,
                        thread_error=thread_error,
                        # Shared database: another process may have resumed the run while this one was cut off.
                        owner=self.instance_id if self.bus.shared else None,
                        events=events,
                        thread_expires_in=TEMPORARY_THREAD_GRACE_SECONDS if left_to_creator else None,
                    )
                )
            if job.temporary:
                # Its events go first: deleting the thread deletes the run and, on Postgres, its event rows.
                await self._end_events(job)
                if not left_to_creator:
                    await self.delete_thread_data(job.thread_id)
        except TakenOver:
            job.taken_over = True
            self._let_go(job)
        finally:
            if not job.taken_over:
                await self._ended_here(job, more_waiting)

    async def _ended_here(self, job: Job, more_waiting: bool) -> None:
        """Everything after a run's end was stored, by the process that executed it to its end."""
        # The status is stored before the stream closes: a client that sees the end and reads the run
        # finds it finished. Waiters here are released first; what other processes need comes after.
        self.streams.close(job.run_id)
        job.done.set()
        self._jobs.pop(job.run_id, None)
        self._signal_end(job.run_id)
        if more_waiting or self._backlog:
            self._wake.set()  # the thread's next run, or one this process had no room for, may now start
        if job.run["kwargs"].get("webhook") and self.webhooks_enabled:
            self.webhooks.send(job.run["kwargs"]["webhook"], self._webhook_payload(job))
        await self._end_events(job)
        if self.bus.shared and more_waiting:
            await self.bus.notify("aegra_wake")

    async def _despite_outages(self, write):
        """A write that must not be lost to a dropped database connection: made again once the database answers."""
        while True:
            try:
                return await write()
            except Exception as exc:
                if not connection_lost(exc):
                    raise
            await self._database_back()

    async def _end_events(self, job: Job) -> None:
        """Persist the rest of a run's events and its end marker, once (Postgres: other processes read them)."""
        if self.persister is not None and not job.events_ended:
            job.events_ended = True
            await self.persister.end(job.run_id)

    @staticmethod
    def _webhook_payload(job: Job) -> dict[str, Any]:
        outcome = job.outcome
        ended = utcnow()
        payload = {
            **job.run,
            "status": outcome.status if outcome else "error",
            "updated_at": ended,
            "run_started_at": job.started_at,
            "run_ended_at": ended,
        }
        # The run's user stays on this server (see aegra_server.auth); the webhook gets the run as the API shows it.
        payload["kwargs"] = public_kwargs(job.run["kwargs"])
        if outcome is not None and outcome.error is not None:
            payload["error"] = outcome.error
        else:
            payload["values"] = run_output(outcome)
        return payload

    def _left_to_creator(self, run: dict[str, Any]) -> bool:
        """Whether a temporary run's thread outlives its end: another process created the run and its client
        waits there, reading the output from the thread (or the run's events) once the run has ended, so that
        process deletes it (discard_temporary); if nobody does, the sweeper does after a grace period."""
        creator = run["kwargs"].get("creator")
        return is_temporary(run["kwargs"]) and creator is not None and creator != self.instance_id

    async def discard_temporary(self, run: dict[str, Any]) -> None:
        """After this process's client got the output of a temporary run that another process executed: its
        thread goes now (where this process executed it, it is gone already)."""
        if is_temporary(run["kwargs"]) and run["kwargs"].get("creator") == self.instance_id:
            await self.delete_thread_data(run["thread_id"], if_present=True)

    async def delete_thread_data(self, thread_id: str, *, if_present: bool = False) -> None:
        """The thread's row (its runs and events with it) and its checkpoints. `if_present`: none of it when the
        row is gone already (deleted with its checkpoints)."""
        try:
            await self.repos.threads.delete(thread_id)
        except NotFound:
            if if_present:
                return
        await self.checkpointer.adelete_thread(thread_id)

    # ---- observing and controlling ----------------------------------------------------------------------------

    def job(self, run_id: str) -> Job | None:
        return self._jobs.get(run_id)

    async def wait_for(self, run_id: str) -> Outcome | None:
        """The outcome of a run this process executes, now or once it starts (a queued or delayed run), when it
        ends; None for a run that ended without executing here. A stateless run's output exists only here: its
        thread goes when it ends."""
        job = self._jobs.get(run_id) or await self._job_once_started(run_id)
        if job is None:
            return None
        await job.done.wait()
        return job.outcome

    async def _job_once_started(self, run_id: str) -> Job | None:
        """The run's job when this process starts it; None if it ends first (executed elsewhere, or cancelled)."""
        started = asyncio.get_running_loop().create_future()
        self._awaiting_start[run_id].append(started)
        ended = asyncio.ensure_future(self.wait_for_end(run_id))
        try:
            # A run started here is its job before it can end: `started` is done first.
            await asyncio.wait({started, ended}, return_when=asyncio.FIRST_COMPLETED)
            return started.result() if started.done() else None
        finally:
            ended.cancel()
            waiting = self._awaiting_start.get(run_id)
            if waiting is not None and started in waiting:
                waiting.remove(started)
                if not waiting:
                    del self._awaiting_start[run_id]

    async def wait_for_end(self, run_id: str) -> dict[str, Any] | None:
        """Wait until a run, wherever it executes, is no longer pending or running; returns its row (None if
        it was deleted, as a rollback does)."""
        while True:
            job = self._jobs.get(run_id)
            if job is not None:
                await job.done.wait()
            try:
                run = await self.repos.runs.get(run_id)
            except NotFound:
                run = None
            if run is None or run["status"] not in ACTIVE:
                # Made by a wait whose end signal came before it did (or by one of a run deleted unstarted,
                # which sends none): no signal will take it away now.
                self._ended.pop(run_id, None)
                return run
            ended = self._ended.setdefault(run_id, asyncio.Event())
            try:
                await asyncio.wait_for(ended.wait(), POLL_SECONDS)
            except TimeoutError:
                pass

    async def follow(self, run_id: str, start: int | None, heartbeat: float):
        """A run's events from id `start` on (None: from now on), wherever it executes; None items are
        heartbeats."""
        while True:
            stream = self.streams.get(run_id)
            if stream is not None and not stream.handed_over:
                async for event in stream.follow(stream.end if start is None else start, heartbeat):
                    yield event
                if not stream.handed_over:
                    return
                # The process that took the run over goes on from there (what this one did past it is lost work).
                start = stream.handed_over_at
                continue
            if self.bus.shared:
                if start is None:
                    start = await self.repos.runs.last_event_seq(run_id) + 1
                async for event in follow_persisted(self, run_id, start, heartbeat):
                    yield event
                return
            start = start or 0  # a queued run: everything it will send is still to come
            # One process: the run waits for its thread's turn here, or finished long ago.
            try:
                run = await self.repos.runs.get(run_id)
            except NotFound:
                return
            if run["status"] not in ACTIVE:
                return
            opened = self.streams.opened(run_id)
            try:
                await asyncio.wait_for(opened.wait(), heartbeat)
            except TimeoutError:
                yield None

    def cancel_detached(self, run_id: str, action: str = "interrupt", reason: str | None = None) -> None:
        """Cancel in a task of its own: for a client that disconnected, whose request is being torn down (in a
        cancelled scope, the cancellation's own database write and signal would be cancelled too)."""
        task = asyncio.get_running_loop().create_task(self.cancel(run_id, action=action, reason=reason))
        self._detached.add(task)
        task.add_done_callback(self._detached_done)

    def _detached_done(self, task: asyncio.Task) -> None:
        self._detached.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("cancelling a run failed", exc_info=task.exception())

    async def cancel(
        self, run_id: str, *, action: str = "interrupt", wait: bool = False, reason: str | None = None
    ) -> None:
        """Ask a run to stop, wherever it runs. The first action asked for is the one taken: a later cancel with
        another action (rollback after interrupt, say) must not change it halfway through the first's work.
        `reason`: how it was asked for, for the thread's error (cancel_error); it goes with the signal to the
        process executing the run, not through the database."""
        job = self._jobs.get(run_id)
        if job is not None:
            # Stopped once: cancelling its task again would cut short the graph's wait for its checkpoint writes
            # (LangGraph waits for them as the cancel unwinds), and a write landing after a rollback's deletion
            # would leave the rolled-back run's last step in the thread.
            if job.cancel_action is None:
                job.cancel_action, job.cancel_reason = action, reason
                if job.task is not None and not job.task.done():
                    job.task.cancel()
        else:
            row = await self.repos.runs.request_cancel(run_id, action)
            if row is not None and row.get("settled"):
                await self._thread_as_its_checkpoint(row["thread_id"])
                await self._announce_end(run_id)
            elif row is not None and row["status"] in ACTIVE:
                await self.bus.notify("aegra_cancel", f"{run_id}:{action}:{reason or ''}")
        if wait:
            await self.wait_for_end(run_id)

    async def _thread_as_its_checkpoint(self, thread_id: str) -> None:
        """A run canceled before it started changed nothing, but settling it left its thread idle: a thread
        whose checkpoint still has work to do (waiting at an interrupt or a breakpoint) is interrupted again, as
        langgraph-api derives a thread's status from its checkpoint. Unless another run began meanwhile."""
        try:
            thread = await self.repos.threads.get(thread_id)
        except NotFound:
            return  # a rollback's thread, or one deleted meanwhile
        if thread["status"] != "idle":
            return
        snapshot = await self.thread_snapshot(thread)
        if snapshot is not None and (status := status_of(snapshot)) != "idle":
            await self.repos.threads.set_status_if_idle(thread_id, status)

    async def thread_snapshot(self, thread: dict[str, Any]) -> StateSnapshot | None:
        """The thread's state as its checkpoint has it, its graph built as state reads build it (from the thread's
        config: storage.threads.graph_config_of); None for a thread whose graph is not served here."""
        graph_id = (thread.get("metadata") or {}).get("graph_id")
        if graph_id not in self.registry:
            return None
        config = graph_config_of(thread)
        async with self.registry.graph_scope(graph_id, config, checkpointer=self.checkpointer, store=self.store) as graph:
            return await graph.aget_state({"configurable": {"thread_id": thread["thread_id"]}})

    def _on_cancel_signal(self, payload: str) -> None:
        run_id, _, rest = payload.partition(":")
        action, _, reason = rest.partition(":")
        job = self._jobs.get(run_id)
        if job is not None and job.cancel_action is None:
            self.cancel_detached(run_id, action or "interrupt", reason or None)
        elif job is None:
            self._early_cancels[run_id] = (action or "interrupt", reason or None)
            while len(self._early_cancels) > EARLY_CANCELS_KEPT:
                self._early_cancels.popitem(last=False)

    def _on_events_signal(self, payload: str) -> None:
        run_id, thread_id = run_of_signal(payload)
        ended = self._ended.pop(run_id, None)  # waiters make a new one for their next wait
        if ended is not None:
            ended.set()
        if thread_id is not None:
            self._copy_into_thread_log(run_id, thread_id)

    # ---- thread logs across processes ---------------------------------------------------------------------------

    def _copy_into_thread_log(self, run_id: str, thread_id: str) -> None:
        """A run of another process signalled events: when its thread's log is watched here, its events are copied
        into it from the first (signals come with every batch, so a reader who arrives mid-run gets it too)."""
        local = self.streams.get(run_id)
        if run_id in self._copies or (local is not None and not local.handed_over):
            return  # already being copied, or executed here (its own stream feeds the thread log)
        thread_log = self.streams.watched_thread_log(thread_id)
        if thread_log is None or run_id in thread_log.ended:
            return
        start = 0 if local is None else local.handed_over_at  # what happened here before is in the log already
        task = self._copies[run_id] = asyncio.get_running_loop().create_task(
            self._copy_events(run_id, thread_log, start)
        )
        task.add_done_callback(lambda _: self._copies.pop(run_id, None))

    async def _copy_events(self, run_id: str, thread_log: ThreadLog, start: int = 0) -> None:
        """A run executing elsewhere, from its first event (or `start`) to its end, into a thread log here, as a
        run executing here is mirrored into it: in its turn (ThreadLog)."""
        await thread_log.wait_turn(run_id)
        try:
            try:
                key = thread_key((await self.repos.runs.get(run_id))["created_at"])
            except NotFound:
                return  # deleted meanwhile
            end = start
            async for event in follow_persisted(self, run_id, start, self.settings.heartbeat_seconds):
                if run_id in self._jobs:
                    return  # resumed here: its own stream feeds the thread log from now on
                if event is not None:
                    thread_log.add(key + event.id, event.name, event.data)
                    end = event.id + 1
            thread_log.mark_run_done(run_id, key + end)
        except Exception:
            log.exception("copying run %s into its thread's log failed", run_id)
        finally:
            thread_log.end_turn(run_id)

    async def thread_history(self, thread_id: str, after: int) -> list[Event]:
        """What the thread's runs sent after key `after` (see runs.stream.KEY_SPAN), as the database has it (every
        process stores every event when several share it), each ended run closed by its run_done: what a thread
        stream resumed here owes its client, wherever it was read before. The latest THREAD_LOG_EVENTS."""
        # A second early, rather than trust each database to compare timestamps to the microsecond: keys decide.
        created_since = EPOCH + timedelta(microseconds=max(after, 0) // KEY_SPAN) - timedelta(seconds=1)
        history = []
        for run_id, created_at, seq, name, data in await self.repos.runs.thread_events(
            thread_id, created_since, THREAD_LOG_EVENTS
        ):
            key = thread_key(created_at) + seq
            if key > after:
                history.append(Event(key, "metadata", run_done(run_id)) if name == END else Event(key, name, data))
        return history

    async def thread_log_with_history(self, thread_id: str) -> ThreadLog:
        """The thread's log; made here while other processes share the database, it first gets the thread's
        history from the database: its runs that ended, as stored, and then, copied as they go, those still
        running. Otherwise it would hold only runs this process executed or saw signalled while someone here
        watched: a thread-protocol reader arriving here after a run ended elsewhere would wait for it forever,
        and the logs of two processes would number their protocol events differently (the `since` a client got
        from one would mean something else on the other). Two edges where they still can: a history longer than
        THREAD_LOG_EVENTS, and a thread idle long enough for the sweeper to delete its runs' events between the
        times two processes read it (a thread in use keeps them)."""
        log = self.streams.thread_log(thread_id)
        if log.history_read or not self.bus.shared:
            return log
        log.history_read = True
        if log.end > 0 or log.writer is not None:
            return log  # fed here already (a run executing here): history would come after what is newer
        with log.followed():  # runs signalled meanwhile are copied, after the history
            turn = f"history of {thread_id}"
            await log.wait_turn(turn)
            try:
                rows = await self.repos.runs.thread_events(thread_id, EPOCH, THREAD_LOG_EVENTS)
                ended = {run_id for run_id, _, _, name, _ in rows if name == END}
                for run_id, created_at, seq, name, data in rows:
                    if run_id not in ended:
                        continue  # still running: copied below, from its first event, as it goes
                    key = thread_key(created_at) + seq
                    if name == END:
                        log.mark_run_done(run_id, key)
                    else:
                        log.add(key, name, data)
            finally:
                log.end_turn(turn)
            for running in dict.fromkeys(run_id for run_id, *_ in rows if run_id not in ended):
                self._copy_into_thread_log(running, thread_id)
        return log

    async def _announce_end(self, run_id: str) -> None:
        """A run that ended without executing here (settled by a cancel, or given up): its waiters in this process
        and, when processes share the database, in the others learn of it."""
        self._signal_end(run_id)
        if self.bus.shared:
            await self.bus.notify("aegra_events", run_id)

    def _signal_end(self, run_id: str) -> None:
        self.streams.wake_waiters(run_id)
        self._on_events_signal(run_id)

    async def cancel_many(
        self,
        *,
        thread_id: str | None,
        run_ids: list[str] | None,
        status: str,
        action: str,
        thread_filter: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> int:
        """Cancel the runs that match every given criterion; `status` is pending, running or all.
        `thread_filter` (the caller's authorization) keeps the runs of threads it lets through."""
        chosen = await self.repos.runs.active(
            thread_id=thread_id, run_ids=run_ids, status=status, thread_filter=thread_filter
        )
        for row in chosen:
            await self.cancel(row["run_id"], action=action, reason=reason)
        return len(chosen)

    async def cancel_thread(self, thread_id: str) -> None:
        """Stop every queued or running run of a thread (before the thread is deleted): an interrupt whose
        followers get an error event last (RUN_DELETED)."""
        await self._cancel_all(await self.repos.runs.active(thread_id=thread_id), "delete")

    async def cancel_assistant(self, assistant_id: str) -> None:
        """Stop every queued or running run of an assistant (before the assistant is deleted)."""
        await self._cancel_all(await self.repos.runs.active(assistant_id=assistant_id), "interrupt")

    async def _cancel_all(self, runs: list[dict[str, Any]], action: str) -> None:
        """Ask every run to stop, then wait for them: waiting for one first would let a queued one start."""
        for run in runs:
            await self.cancel(run["run_id"], action=action)
        for run in runs:
            await self.wait_for_end(run["run_id"])


__all__ = ["RunManager", "Job", "TERMINAL", "merge_config", "Event"]
