"""The run engine: a row first (pending), then work on a per-thread queue with bounded concurrency.

Runs of one thread execute one after another in creation order; runs of different threads in parallel, up to
`max_concurrent_runs`. Each run writes its events to a RunStream that every reader follows.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from langgraph.checkpoint.base.id import uuid6

from aegra_server.graphs import GraphRegistry, default_assistant_id
from aegra_server.runs.execute import Outcome, execute, run_output
from aegra_server.runs.webhooks import WebhookSender
from aegra_server.runs.stream import RunStream, StreamRegistry
from aegra_server.serde import dumps, jsonable
from aegra_server.settings import Settings
from aegra_server.state import interrupts_by_task
from aegra_server.storage.checkpoints import delete_after
from aegra_server.storage.common import Conflict, NotFound
from aegra_server.storage.database import utcnow
from aegra_server.storage.repositories import Repositories

log = logging.getLogger("aegra.runs")

TERMINAL = {"success", "error", "interrupted", "timeout"}


@dataclass
class Job:
    run: dict[str, Any]
    graph_id: str
    config: dict[str, Any]
    context: dict[str, Any]
    stream: RunStream
    temporary: bool
    done: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: Outcome | None = None
    task: asyncio.Task | None = None
    cancel_action: str | None = None
    started: bool = False
    running_recorded: asyncio.Future | None = None
    marker: str | None = None  # a checkpoint id older than anything this run writes (for rollback)

    @property
    def run_id(self) -> str:
        return self.run["run_id"]

    @property
    def thread_id(self) -> str:
        return self.run["thread_id"]


def merge_config(base: dict[str, Any] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    """Run config over assistant config; `configurable` and `metadata` merge key by key."""
    merged = {**(base or {}), **(override or {})}
    for key in ("configurable", "metadata"):
        merged[key] = {**(base or {}).get(key, {}), **(override or {}).get(key, {})}
    return merged


class RunManager:
    def __init__(self, repos: Repositories, registry: GraphRegistry, checkpointer, store, settings: Settings) -> None:
        self.repos = repos
        self.registry = registry
        self.checkpointer = checkpointer
        self.store = store
        self.settings = settings
        self.streams = StreamRegistry()
        self._jobs: dict[str, Job] = {}
        self._queues: dict[str, deque[Job]] = {}
        self._workers: dict[str, asyncio.Task] = {}
        self._slots = asyncio.Semaphore(settings.max_concurrent_runs)
        self.webhooks = WebhookSender()

    # ---- creating -------------------------------------------------------------------------------------------

    def assistant_id_of(self, assistant_id: str) -> str:
        """A graph name stands for that graph's default assistant."""
        return default_assistant_id(assistant_id) if assistant_id in self.registry else assistant_id

    async def create(self, thread_id: str | None, payload: dict[str, Any]) -> Job:
        stateless = thread_id is None
        strategy = payload.get("multitask_strategy") or "enqueue"
        if stateless:
            thread_id = str(uuid.uuid4())
        else:
            await self._apply_multitask(thread_id, strategy)
        kwargs = {k: v for k, v in payload.items() if k not in ("metadata", "assistant_id", "multitask_strategy")}
        row = {
            "run_id": str(uuid6()),
            "thread_id": thread_id,
            "assistant_id": self.assistant_id_of(payload["assistant_id"]),
            "metadata": payload.get("metadata") or {},
            "kwargs": kwargs,
            "multitask_strategy": strategy,
        }
        row, assistant = await self.repos.runs.create(
            row, create_thread=stateless or payload.get("if_not_exists") == "create"
        )
        if assistant["graph_id"] not in self.registry:
            await self.repos.runs.finish(row, status="error", thread_status="error", values=None, interrupts=None)
            raise NotFound(f"graph {assistant['graph_id']!r} of assistant {assistant['assistant_id']} is not loaded")
        return self._enqueue(row, assistant, temporary=stateless and payload.get("on_completion", "delete") == "delete")

    async def _apply_multitask(self, thread_id: str, strategy: str) -> None:
        active = [j for j in self._queues.get(thread_id, ()) if not j.done.is_set()]
        running = [j for j in self._jobs.values() if j.thread_id == thread_id and j.task and not j.done.is_set()]
        if not (active or running):
            return
        if strategy == "reject":
            raise Conflict(f"thread {thread_id} is busy with another run (multitask_strategy=reject)")
        if strategy in ("interrupt", "rollback"):
            for job in running + active:
                await self.cancel(job.run_id, action=strategy, wait=True)

    def _enqueue(self, row: dict[str, Any], assistant: dict[str, Any], *, temporary: bool) -> Job:
        kwargs = row["kwargs"]
        run_config = merge_config(assistant["config"], kwargs.get("config"))
        context = {**(assistant.get("context") or {}), **(kwargs.get("context") or {})}
        job = Job(
            run=row,
            graph_id=assistant["graph_id"],
            config=run_config,
            context=context,
            stream=self.streams.open(row["run_id"], bool(kwargs.get("stream_resumable")), row["thread_id"]),
            temporary=temporary,
        )
        job.stream.append("metadata", dumps({"run_id": job.run_id, "attempt": 1}))
        self._jobs[job.run_id] = job
        self._queues.setdefault(job.thread_id, deque()).append(job)
        if job.thread_id not in self._workers:
            self._workers[job.thread_id] = asyncio.create_task(self._drain(job.thread_id))
        return job

    # ---- executing ------------------------------------------------------------------------------------------

    async def _drain(self, thread_id: str) -> None:
        queue = self._queues[thread_id]
        try:
            while queue:
                job = queue[0]
                if not job.done.is_set():
                    delay = float(job.run["kwargs"].get("after_seconds") or 0)
                    if delay > 0:
                        await asyncio.sleep(delay)
                    async with self._slots:
                        await self._run(job)
                queue.popleft()
        finally:
            # No await between the emptiness check and this, so a concurrent create either saw the worker
            # (and its job is in the queue) or starts a new one.
            self._workers.pop(thread_id, None)
            if not queue:
                self._queues.pop(thread_id, None)

    def _graph_config(self, job: Job) -> dict[str, Any]:
        kwargs = job.run["kwargs"]
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
        config["metadata"].update(job.run["metadata"])
        config["metadata"].update(
            run_id=job.run_id, thread_id=job.thread_id, assistant_id=job.run["assistant_id"], graph_id=job.graph_id
        )
        config["run_id"] = job.run_id
        return config

    async def _run(self, job: Job) -> None:
        config = self._graph_config(job)
        job.marker = str(uuid6())
        job.started = True
        # Recorded while the graph already runs; awaited before the final write so the order holds.
        job.running_recorded = asyncio.ensure_future(self.repos.runs.set_status(job.run_id, "running"))
        try:
            async with self.registry.graph_scope(
                job.graph_id, config, checkpointer=self.checkpointer, store=self.store
            ) as graph:
                job.task = asyncio.create_task(execute(graph, job.run["kwargs"], config, job.context, job.stream))
                if job.cancel_action:  # cancelled while starting
                    job.task.cancel()
                try:
                    outcome = await job.task
                except asyncio.CancelledError:
                    if job.cancel_action is None:
                        raise  # the server is shutting down
                    outcome = Outcome(status="interrupted")
                await self._finish(job, graph, config, outcome)
        except Exception as exc:
            log.exception("run %s failed outside the graph", job.run_id)
            error = {"error": type(exc).__name__, "message": str(exc)}
            job.stream.append("error", dumps(error))
            await self._record(job, Outcome(status="error", error=error), "error", None, None)

    async def _finish(self, job: Job, graph, config: dict[str, Any], outcome: Outcome) -> None:
        kwargs = job.run["kwargs"]
        if job.cancel_action == "rollback" or (job.cancel_action and outcome.status == "interrupted"):
            await self._finish_cancelled(job, graph, outcome)
            return
        values = jsonable(outcome.values) if outcome.values is not None else None
        if isinstance(values, dict):
            values.pop("__interrupt__", None)  # LangGraph adds it to the last values chunk; it is not state
        interrupts: dict[str, Any] = {}
        thread_status = "error" if outcome.status == "error" else "idle"
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
        paused = bool(interrupts) or (job.cancel_action == "rollback" and bool(snapshot.next))
        thread_status = "interrupted" if paused else "idle"
        if job.cancel_action != "rollback":
            await self._record(job, outcome, thread_status, values, interrupts)
            return
        if getattr(job, "running_recorded", None) is not None:
            await job.running_recorded
        # The thread must not stay busy: record the end, then remove the run.
        await self.repos.runs.finish(
            job.run, status="interrupted", thread_status=thread_status, values=values, interrupts=interrupts
        )
        await self.repos.runs.delete(job.run_id)
        await self._record(job, outcome, None, None, None, recorded=True)

    async def _record(self, job, outcome, thread_status, values, interrupts, recorded: bool = False) -> None:
        job.outcome = outcome
        try:
            if job.running_recorded is not None:
                await job.running_recorded
            if not recorded:
                await self.repos.runs.finish(
                    job.run, status=outcome.status, thread_status=thread_status, values=values, interrupts=interrupts
                )
            if job.temporary:
                await self.delete_thread_data(job.thread_id)
        finally:
            # The status is stored before the stream closes: a client that sees the end and reads the run
            # finds it finished.
            self.streams.close(job.run_id)
            job.done.set()
            self._jobs.pop(job.run_id, None)
            if job.run["kwargs"].get("webhook"):
                self.webhooks.send(job.run["kwargs"]["webhook"], self._webhook_payload(job))

    @staticmethod
    def _webhook_payload(job: Job) -> dict[str, Any]:
        outcome = job.outcome
        payload = {**job.run, "status": outcome.status if outcome else "error", "updated_at": utcnow()}
        if outcome is not None and outcome.status == "error":
            payload["error"] = outcome.error
        else:
            payload["values"] = run_output(outcome)
        return payload

    async def delete_thread_data(self, thread_id: str) -> None:
        try:
            await self.repos.threads.delete(thread_id)
        except NotFound:
            pass
        await self.checkpointer.adelete_thread(thread_id)

    # ---- observing and controlling ----------------------------------------------------------------------------

    def job(self, run_id: str) -> Job | None:
        return self._jobs.get(run_id)

    async def wait_for(self, run_id: str) -> Outcome | None:
        job = self._jobs.get(run_id)
        if job is not None:
            await job.done.wait()
            return job.outcome
        return None

    async def cancel(self, run_id: str, *, action: str = "interrupt", wait: bool = False) -> None:
        job = self._jobs.get(run_id)
        if job is None:
            return
        job.cancel_action = action
        if job.task is not None and not job.task.done():
            job.task.cancel()
        elif not job.started:
            # Still queued: it never starts.
            queue = self._queues.get(job.thread_id)
            if queue and job in queue and queue[0] is not job:
                queue.remove(job)
            outcome = Outcome(status="interrupted")
            if action == "rollback":
                await self.repos.runs.finish(  # so that the thread does not stay busy
                    job.run, status="interrupted", thread_status="idle", values=None, interrupts=None
                )
                await self.repos.runs.delete(job.run_id)
                await self._record(job, outcome, None, None, None, recorded=True)
            else:
                await self._record(job, outcome, "idle", None, None)
        if wait:
            await job.done.wait()

    async def cancel_thread(self, thread_id: str) -> None:
        """Stop every queued or running run of a thread (before the thread is deleted)."""
        for job in [j for j in self._jobs.values() if j.thread_id == thread_id]:
            await self.cancel(job.run_id, wait=True)

    async def recover(self) -> None:
        """Pick up runs a previous server process left unfinished: pending ones start, running ones resume
        from their last checkpoint."""
        for row in await self.repos.runs.pending():
            try:
                assistant = await self.repos.assistants.get(row["assistant_id"])
            except NotFound:
                await self.repos.runs.finish(row, status="error", thread_status="error", values=None, interrupts=None)
                continue
            if row["status"] == "running":
                row = {**row, "kwargs": {**row["kwargs"], "input": None, "command": None}}
            self._enqueue(row, assistant, temporary=False)

    async def cancel_many(
        self, *, thread_id: str | None, run_ids: list[str] | None, status: str, action: str
    ) -> int:
        """Cancel the runs that match every given criterion; `status` is pending, running or all."""
        chosen = [
            job
            for job in self._jobs.values()
            if (thread_id is None or job.thread_id == thread_id)
            and (run_ids is None or job.run_id in run_ids)
            and (status == "all" or (status == "running") == job.started)
        ]
        for job in chosen:
            await self.cancel(job.run_id, action=action)
        return len(chosen)

    async def shutdown(self) -> None:
        for worker in list(self._workers.values()):
            worker.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        await self.webhooks.close()


__all__ = ["RunManager", "Job", "TERMINAL", "merge_config"]
