"""A2A tasks and contexts as this server keeps them: a context is a thread, a task the runs that worked on it.

A context is the thread of that id, or of a UUID made from it when it is not one. A task is `{contextId}:{run_id}`
of the run that started it; a message that answers a task waiting for input continues it with another run, whose
metadata carries the task's id (`a2a.task_id`; every run also keeps there the context id it was given). A task's
state is its latest run's: pending → submitted, running → working, success → completed (input-required while the
thread waits at an interrupt that run reached), interrupted → canceled, error or timeout → failed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from aegra_server.a2a import content, wire

RUN_STATE = {"pending": "submitted", "running": "working", "success": "completed", "interrupted": "canceled",
             "error": "failed", "timeout": "failed"}
# Context ids that are not UUIDs name the thread made from them with this namespace.
CONTEXT_NAMESPACE = uuid.UUID("6f1c2a43-a2a0-4e0a-9c8a-3b7e5d2f1a01")


def thread_of(context_id: str) -> str:
    """The thread behind a context: A2A context ids are any string, thread ids UUIDs."""
    try:
        return str(uuid.UUID(context_id))
    except ValueError:
        return str(uuid.uuid5(CONTEXT_NAMESPACE, context_id))


@dataclass
class TaskRef:
    task_id: str
    context_id: str
    thread: dict[str, Any]
    run: dict[str, Any]  # the task's latest run
    state: str
    latest: bool  # its run is the thread's latest: the thread's values are its outcome


def tasks_in(assistant_id: str, thread: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, TaskRef]:
    """The assistant's tasks in a thread, from the thread's runs (newest first): each task with its latest run."""
    refs: dict[str, TaskRef] = {}
    for run in runs:
        if run["assistant_id"] != assistant_id:
            continue
        marks = (run.get("metadata") or {}).get("a2a") or {}
        context = marks.get("context_id") or thread["thread_id"]
        task_id = marks.get("task_id") or f"{context}:{run['run_id']}"
        if task_id in refs:
            continue
        latest = run["run_id"] == runs[0]["run_id"]
        state = RUN_STATE.get(run["status"], "submitted")
        if state == "completed" and latest and thread["status"] == "interrupted":
            state = "input-required"  # the thread waits at an interrupt this run reached
        refs[task_id] = TaskRef(task_id, context, thread, run, state, latest)
    return refs


def task_object(ref: TaskRef, assistant_id: str, history_length: int | None, *, output: Any = None) -> dict[str, Any]:
    """The task in 0.3's JSON. Its artifacts and history come from `output` (what its run returned, or for an
    older task the values its run left) or, for the thread's latest run, the thread's values."""
    values = output if output is not None else ref.thread.get("values")
    outcome_known = output is not None or ref.latest
    status_message = None
    artifacts: list[dict[str, Any]] = []
    if ref.state == "failed":
        error = (output or {}).get("__error__") if isinstance(output, dict) else None
        error = error or ref.run.get("error") or {}
        text = f"{error.get('error', 'Error')}: {error.get('message', '')}" if error else "The run failed"
        message_id = str(uuid.uuid5(CONTEXT_NAMESPACE, f"{ref.task_id}/status"))
        status_message = wire.message("agent", [wire.text_part(text)], message_id, ref.task_id, ref.context_id)
    elif ref.state == "input-required" and outcome_known:
        interrupts = values.get("__interrupt__") if isinstance(values, dict) else None
        if not interrupts:
            interrupts = [i for pending in (ref.thread.get("interrupts") or {}).values() for i in pending]
        artifacts.append(content.interrupt_artifact(interrupts))
    elif ref.state == "completed" and outcome_known:
        artifacts.append(content.response_artifact(values, assistant_id))
    timestamp = ref.run.get("updated_at") or ref.run.get("created_at")
    timestamp = timestamp.isoformat() if hasattr(timestamp, "isoformat") else timestamp
    status = wire.status(ref.state, status_message, timestamp)
    history = content.history(values, ref.task_id, ref.context_id, history_length) if history_length != 0 else None
    return wire.task(ref.task_id, ref.context_id, status, artifacts=artifacts, history=history)
