"""LangGraph StateSnapshot → the protocol's ThreadState (values, next, tasks, checkpoint, ...)."""

from __future__ import annotations

from typing import Any

from langgraph.types import StateSnapshot

from aegra_server.serde import jsonable


def checkpoint_of(config: dict | None) -> dict[str, Any] | None:
    if not config:
        return None
    conf = config.get("configurable") or {}
    return {
        "thread_id": conf.get("thread_id"),
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
        "checkpoint_id": conf.get("checkpoint_id"),
        "checkpoint_map": conf.get("checkpoint_map"),
    }


def status_of(snapshot: StateSnapshot) -> str:
    """A thread's status as its checkpoint says, as langgraph-api derives it: interrupted while work remains
    (an interrupt or a breakpoint), else idle."""
    return "interrupted" if snapshot.next else "idle"


def interrupts_by_task(snapshot: StateSnapshot) -> dict[str, list[dict[str, Any]]]:
    return {task.id: jsonable(list(task.interrupts)) for task in snapshot.tasks if task.interrupts}


def thread_state(snapshot: StateSnapshot) -> dict[str, Any]:
    tasks = []
    for task in snapshot.tasks:
        nested = task.state
        tasks.append(
            {
                "id": task.id,
                "name": task.name,
                "path": list(task.path) if task.path else [],
                # As stored: LangGraph's serializer saves a failed task's exception as its repr, a string sent as
                # it is (an exception object would be {error, message}, as langgraph-api encodes one).
                "error": jsonable(task.error) if task.error is not None else None,
                "interrupts": jsonable(list(task.interrupts)),
                "checkpoint": checkpoint_of(nested) if isinstance(nested, dict) else None,
                "state": thread_state(nested) if isinstance(nested, StateSnapshot) else None,
                "result": jsonable(task.result) if task.result is not None else None,
            }
        )
    return {
        "values": jsonable(snapshot.values) if snapshot.values is not None else {},
        "next": list(snapshot.next),
        "tasks": tasks,
        "checkpoint": checkpoint_of(snapshot.config),
        "metadata": jsonable(snapshot.metadata) if snapshot.metadata else {},
        "created_at": snapshot.created_at,
        "parent_checkpoint": checkpoint_of(snapshot.parent_config),
        "interrupts": jsonable(list(getattr(snapshot, "interrupts", ()) or ())),
        # Older clients read these; langgraph-api still sends them.
        "checkpoint_id": (snapshot.config or {}).get("configurable", {}).get("checkpoint_id"),
        "parent_checkpoint_id": (snapshot.parent_config or {}).get("configurable", {}).get("checkpoint_id"),
    }


def empty_state(thread_id: str) -> dict[str, Any]:
    return {
        "values": {},
        "next": [],
        "tasks": [],
        "checkpoint": None,
        "metadata": {},
        "created_at": None,
        "parent_checkpoint": None,
        "interrupts": [],
        "checkpoint_id": None,
        "parent_checkpoint_id": None,
    }
