"""Runs: one row per run, created pending before any work starts, then claimed by one server process.

A claim is `owner` + `lease_until`. The owner renews the lease while it runs the graph; a run whose lease ran
out (its process died, or handed it back on shutdown) is claimed again and resumed from its last checkpoint.
Runs of one thread run one at a time, oldest first. SQLite has a single writer, which makes each transaction
below see the others' whole. On Postgres every transaction that changes a thread's runs locks the thread's row
first (claimers with SKIP LOCKED): two creations on one thread then take turns, so the second sees the first's
run (without it both found the thread free and ran at once), and all take their locks in the order a thread's
delete does — thread, then its runs — which cannot deadlock with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, delete, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.orm import aliased

from aegra_server.storage.common import Conflict, NotFound, first, row_dict
from aegra_server.storage.database import Database, utcnow
from aegra_server.storage.filters import auth_filter_clause, filter_stamp, matches_filter
from aegra_server.storage.prepared import Prepared
from aegra_server.storage.tables import assistants, run_events, runs, threads
from aegra_server.storage.threads import config_taken_by_run, insert_thread, new_thread_row

ACTIVE = ("pending", "running")

def _is_active(table=runs):
    """Pending or running, as literal comparisons rather than an expanding IN, whose SQL is rebuilt on every
    execution."""
    return or_(*(table.c.status == status for status in ACTIVE))


# The statements every run executes, built once; those on every run's path are Prepared (see storage.prepared).
_IS_ACTIVE = _is_active()
# What creating a run reads, in one statement (one round trip on Postgres): the assistant, its thread's metadata
# (None when the thread does not exist) and config, and whether a run of that thread is unfinished.
_ASSISTANT_AND_THREAD = Prepared(select(
    assistants,
    select(threads.c.metadata).where(threads.c.thread_id == bindparam("b_thread_id")).scalar_subquery().label("_thread_metadata"),
    select(threads.c.config).where(threads.c.thread_id == bindparam("b_thread_id")).scalar_subquery().label("_thread_config"),
    exists().where(and_(runs.c.thread_id == bindparam("b_thread_id"), _IS_ACTIVE)).label("_thread_busy"),
).where(assistants.c.assistant_id == bindparam("b_assistant_id")))
_INSERT_RUN = Prepared(insert(runs))
_MARK_BUSY = Prepared(
    update(threads)
    .where(threads.c.thread_id == bindparam("b_thread_id"))
    .values(
        status="busy",
        updated_at=bindparam("b_now"),
        metadata=bindparam("b_metadata", type_=threads.c.metadata.type),
        config=bindparam("b_config", type_=threads.c.config.type),
    )
)
_THREAD_HAS_ACTIVE_RUNS = select(exists().where(and_(runs.c.thread_id == bindparam("b_thread_id"), _IS_ACTIVE)))
_set_status = (
    update(runs)
    .where(runs.c.run_id == bindparam("b_run_id"))
    .values(status=bindparam("b_status"), updated_at=bindparam("b_now"))
)
_SET_STATUS = Prepared(_set_status)
_SET_STATUS_AND_ERROR = Prepared(_set_status.values(error=bindparam("b_error", type_=runs.c.error.type)))
_SET_THREAD_STATUS = (
    update(threads)
    .where(threads.c.thread_id == bindparam("b_thread_id"))
    .values(status=bindparam("b_status"), updated_at=bindparam("b_now"))
)
# A run's end: the thread takes the run's final status unless another of its runs is unfinished (then it stays
# busy), decided and returned by the UPDATE itself, and the run's error (NULL for a run without one), busy or not,
# as langgraph-api records it.
_end_thread_turn = (
    update(threads)
    .where(threads.c.thread_id == bindparam("b_thread_id"))
    .values(
        status=case(
            (exists().where(and_(runs.c.thread_id == threads.c.thread_id, _IS_ACTIVE)), "busy"),
            else_=bindparam("b_status", type_=threads.c.status.type),
        ),
        updated_at=bindparam("b_now"),
        error=bindparam("b_error", type_=threads.c.error.type),
    )
    .returning(threads.c.status)
)
_END_THREAD_TURN = Prepared(_end_thread_turn)
_END_THREAD_TURN_WITH_STATE = Prepared(
    _end_thread_turn.values(
        values=bindparam("b_values", type_=threads.c["values"].type),
        interrupts=bindparam("b_interrupts", type_=threads.c.interrupts.type),
        state_updated_at=bindparam("b_now"),
    )
)
_INSERT_EVENTS = Prepared(insert(run_events))


def _events_of_runs_still_there() -> Prepared:
    """Insert an event only if its run still exists. A run deleted while its events were on their way (with its
    thread, say) takes none, rather than failing the batch: on Postgres a refused row in psycopg's pipeline also
    logged a WARNING ("pipeline aborted")."""
    event = {name: bindparam(name, type_=run_events.c[name].type) for name in ("run_id", "seq", "event", "data")}
    rows = select(*event.values()).where(exists().where(runs.c.run_id == event["run_id"]))
    return Prepared(insert(run_events).from_select(list(event), rows))


_INSERT_EVENTS_OF_RUNS_STILL_THERE = _events_of_runs_still_there()
_LOCK_THREAD = select(threads.c.thread_id).where(threads.c.thread_id == bindparam("b_thread_id")).with_for_update()


def _lock_thread(conn: Connection, thread_id: str) -> None:
    """On Postgres, hold the thread's row until the transaction ends (see the module's docstring). The statements
    after it see what the transactions that held it before committed (READ COMMITTED takes a snapshot per
    statement)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_THREAD, {"b_thread_id": thread_id})


class TakenOver(Exception):
    """The run is held by another process now (its lease ran out where it executed): that one records its end."""


class RunRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        run: dict[str, Any],
        *,
        create_thread: bool,
        reject_if_busy: bool,
        claim_for: str | None,
        lease_seconds: float,
        after_seconds: float = 0,
        thread_filter: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Insert a pending run and mark its thread busy, in one transaction; returns (run, its assistant).

        The assistant is read in the same transaction. `create_thread` makes a missing thread (stateless runs,
        if_not_exists=create). `reject_if_busy` raises Conflict when the thread has an unfinished run.
        `claim_for` claims the run at once for that process when the thread is free, so the common case needs
        no separate claim. The thread's metadata gets `graph_id` and `assistant_id`, as langgraph-api stamps
        them: Agent Chat UI's thread list searches on exactly that. A thread made here also takes the run's
        metadata (its config's, then its own: a cron's firing brings the cron's), as langgraph-api's does.

        `thread_filter` is the caller's authorization on the thread: an existing thread it hides is NotFound,
        and a thread created here carries its equality conditions, so that its creator can reach it again.
        """
        thread_id = run["thread_id"]
        run = {
            **run,
            "status": "pending",
            "attempt": 1,
            "owner": None,
            "lease_until": None,
            "cancel_action": None,
            "error": None,
        }

        def create(conn: Connection) -> tuple[dict[str, Any], dict[str, Any]]:
            _lock_thread(conn, thread_id)
            # Stamped once the thread is held, so that runs of one thread are created in the order they commit
            # (multitask interrupt and rollback stop the runs created before theirs).
            now = utcnow()
            run.update(created_at=now, updated_at=now, available_at=now + timedelta(seconds=after_seconds))
            assistant = _ASSISTANT_AND_THREAD.first(conn, {"b_assistant_id": run["assistant_id"], "b_thread_id": thread_id})
            if assistant is None:
                raise NotFound(f"assistant {run['assistant_id']} not found")
            metadata, busy = assistant.pop("_thread_metadata"), assistant.pop("_thread_busy")
            thread_config = assistant.pop("_thread_config") or {}
            stamp = {"graph_id": assistant["graph_id"], "assistant_id": assistant["assistant_id"]}
            run_config = run["kwargs"].get("config") or {}
            config_metadata = run_config.get("metadata") or {}
            if metadata is not None and thread_filter and not matches_filter(metadata, thread_filter):
                raise NotFound(f"thread {thread_id} not found")
            if metadata is None:
                if not create_thread:
                    raise NotFound(f"thread {thread_id} not found")
                # What the client sent gives way to what the caller's authorization requires and to the stamp.
                owned = {**config_metadata, **run["metadata"], **filter_stamp(thread_filter), **stamp}
                thread_config = config_taken_by_run({}, assistant["config"], run_config)
                row = {**new_thread_row(thread_id, owned), "status": "busy", "config": thread_config}
                if not insert_thread(conn, row):
                    return create(conn)  # made meanwhile by another run's creation: join it as an existing thread
            else:
                if busy and reject_if_busy:
                    raise Conflict(f"thread {thread_id} is busy with another run (multitask_strategy=reject)")
                if not busy:  # a run queued behind another leaves the thread's config as the running one set it
                    thread_config = config_taken_by_run(thread_config, assistant["config"], run_config)
                _MARK_BUSY.execute(
                    conn,
                    {"b_thread_id": thread_id, "b_now": now, "b_metadata": {**metadata, **stamp}, "b_config": thread_config},
                )
            if thread_config.get("configurable"):
                # The run sees its thread's configurable under its own (see config_taken_by_run).
                configurable = {**thread_config["configurable"], **(run_config.get("configurable") or {})}
                run["kwargs"] = {**run["kwargs"], "config": {**run_config, "configurable": configurable}}
            # As langgraph-api: the run's metadata over its config's, its thread's and its assistant's.
            run["metadata"] = {
                **assistant["metadata"], **(metadata if metadata is not None else owned), **stamp,
                **config_metadata, **run["metadata"], "assistant_id": assistant["assistant_id"],
            }
            if claim_for and not busy and after_seconds <= 0:
                # Claimed and started here: stored running at once, which saves the run a write.
                run.update(owner=claim_for, lease_until=now + timedelta(seconds=lease_seconds), status="running")
            _INSERT_RUN.execute(conn, run)
            return run, assistant

        return await self.db.write(create)

    async def claim(self, owner: str, lease_seconds: float) -> dict[str, Any] | None:
        """Claim the next run this process may start: the oldest available pending run of a thread whose turn
        is free, or a run whose lease ran out (to resume). None when there is nothing to do.

        The claimed run is running from here on; `resumed` in the row says whether it was running before (a
        process claimed it, then died or handed it back)."""
        dialect = self.db.dialect

        def claim(conn: Connection) -> dict[str, Any] | None:
            now = utcnow()
            older = aliased(runs)
            holder = aliased(runs)
            expired = and_(runs.c.owner.is_not(None), runs.c.lease_until < now)
            candidates = conn.execute(
                select(runs.c.run_id, runs.c.thread_id, runs.c.status)
                .where(
                    or_(
                        and_(runs.c.status == "running", expired),
                        and_(
                            runs.c.status == "pending",
                            runs.c.available_at <= now,
                            or_(runs.c.owner.is_(None), expired),
                            ~exists().where(
                                and_(
                                    older.c.thread_id == runs.c.thread_id,
                                    older.c.status == "pending",
                                    older.c.created_at < runs.c.created_at,
                                )
                            ),
                        ),
                    )
                )
                .order_by(runs.c.created_at)
                .limit(16)
            ).all()
            resumable = {run_id for run_id, _, status in candidates if status == "running"}
            for run_id, thread_id, _ in candidates:
                if dialect == "postgresql":
                    locked = conn.execute(
                        select(threads.c.thread_id).where(threads.c.thread_id == thread_id).with_for_update(skip_locked=True)
                    ).first()
                    if locked is None:
                        continue  # another process is claiming on this thread right now
                taken = conn.execute(
                    update(runs)
                    .where(
                        runs.c.run_id == run_id,
                        _IS_ACTIVE,
                        or_(runs.c.owner.is_(None), runs.c.lease_until < now),
                        ~exists().where(
                            and_(holder.c.thread_id == thread_id, holder.c.run_id != run_id, _holds_turn(holder, now))
                        ),
                    )
                    .values(
                        owner=owner, lease_until=now + timedelta(seconds=lease_seconds), status="running", updated_at=now
                    )
                )
                if taken.rowcount == 1:
                    return {**first(conn, select(runs).where(runs.c.run_id == run_id)), "resumed": run_id in resumable}
            return None

        return await self.db.write(claim)

    async def renew(self, owner: str, run_ids: list[str], lease_seconds: float) -> tuple[set[str], set[str]]:
        """Extend `owner`'s leases of `run_ids`. Returns (held, taken): the runs among them still active and
        `owner`'s, whose leases now run on, and those another process holds now: it took them over while `owner`
        could not renew (cut off from the database, or stalled); `owner` must stop them. A run in neither ended."""
        if not run_ids:
            return set(), set()
        extend = (
            update(runs)
            .where(runs.c.owner == owner, runs.c.run_id.in_(run_ids))
            .values(lease_until=utcnow() + timedelta(seconds=lease_seconds))
        )
        holders = select(runs.c.run_id, runs.c.owner).where(runs.c.run_id.in_(run_ids), _IS_ACTIVE)

        def renew(conn: Connection) -> tuple[set[str], set[str]]:
            conn.execute(extend)
            held: set[str] = set()
            taken: set[str] = set()
            for run_id, holder in conn.execute(holders):
                (held if holder == owner else taken).add(run_id)
            return held, taken

        return await self.db.write(renew)

    async def release(self, owner: str, run_ids: list[str] | None = None) -> int:
        """Hand runs back (shutdown, or a restart of the only process): their leases end now, so any process
        claims them again; a run that had started resumes from its last checkpoint."""
        condition = _IS_ACTIVE & runs.c.owner.is_not(None)
        if owner != "*":
            condition &= runs.c.owner == owner
        if run_ids is not None:
            condition &= runs.c.run_id.in_(run_ids)
        query = update(runs).where(condition).values(lease_until=utcnow() - timedelta(seconds=1))
        return await self.db.write(lambda conn: conn.execute(query).rowcount)

    async def next_attempt(self, owner: str, run_id: str, lease_seconds: float) -> int | None:
        """Count another attempt at a run `owner` holds, renewing its lease; the attempt's number. None when the
        run ended or another process took it over meanwhile (its lease ran out while `owner` could not renew it)."""

        def bump(conn: Connection) -> int | None:
            now = utcnow()
            held = or_(runs.c.owner == owner, runs.c.owner.is_(None), runs.c.lease_until < now)
            taken = conn.execute(
                update(runs)
                .where(runs.c.run_id == run_id, _IS_ACTIVE, held)
                .values(owner=owner, attempt=runs.c.attempt + 1, lease_until=now + timedelta(seconds=lease_seconds))
            )
            if taken.rowcount != 1:
                return None
            return conn.execute(select(runs.c.attempt).where(runs.c.run_id == run_id)).scalar_one()

        return await self.db.write(bump)

    async def request_cancel(self, run_id: str, action: str) -> dict[str, Any] | None:
        """Ask for a run to stop. A pending run nobody holds is settled here (returned with its final status);
        one held by a process gets `cancel_action` for its owner to act on (returned as it is)."""

        def ask(conn: Connection) -> dict[str, Any] | None:
            now = utcnow()
            row = first(conn, select(runs).where(runs.c.run_id == run_id))
            if row is None or row["status"] not in ACTIVE:
                return row
            _lock_thread(conn, row["thread_id"])
            row = first(conn, select(runs).where(runs.c.run_id == run_id))  # as it is now, with the thread held
            if row is None or row["status"] not in ACTIVE:
                return row
            unheld = row["status"] == "pending" and (row["owner"] is None or row["lease_until"] < now)
            if not unheld:
                # The first action asked for stays (see RunManager.cancel).
                taken = row["cancel_action"] or action
                conn.execute(update(runs).where(runs.c.run_id == run_id).values(cancel_action=taken))
                return {**row, "cancel_action": taken}
            if action == "rollback":
                conn.execute(delete(runs).where(runs.c.run_id == run_id))
            else:
                _SET_STATUS.execute(conn, {"b_run_id": run_id, "b_status": "interrupted", "b_now": now})
            busy = conn.execute(_THREAD_HAS_ACTIVE_RUNS, {"b_thread_id": row["thread_id"]}).scalar()
            if not busy:
                conn.execute(_SET_THREAD_STATUS, {"b_thread_id": row["thread_id"], "b_status": "idle", "b_now": now})
            return {**row, "status": "interrupted", "settled": True}

        return await self.db.write(ask)

    async def active(
        self,
        *,
        thread_id: str | None = None,
        run_ids: list[str] | None = None,
        assistant_id: str | None = None,
        status: str = "all",
        thread_filter: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Pending and running runs; `thread_filter` keeps those of threads the caller may see."""
        query = select(runs).where(runs.c.status.in_(ACTIVE if status == "all" else (status,)))
        if thread_filter:
            visible = select(threads.c.thread_id).where(auth_filter_clause(threads.c.metadata, thread_filter, self.db.dialect))
            query = query.where(runs.c.thread_id.in_(visible))
        if thread_id is not None:
            query = query.where(runs.c.thread_id == thread_id)
        if run_ids is not None:
            query = query.where(runs.c.run_id.in_(run_ids))
        if assistant_id is not None:
            query = query.where(runs.c.assistant_id == assistant_id)
        return await self.db.read(lambda conn: [row_dict(r) for r in conn.execute(query.order_by(runs.c.created_at)).all()])

    async def exists(self, run_id: str) -> bool:
        return await self.db.read(first, select(runs.c.run_id).where(runs.c.run_id == run_id)) is not None

    async def get(self, run_id: str, thread_id: str | None = None) -> dict[str, Any]:
        query = select(runs).where(runs.c.run_id == run_id)
        if thread_id is not None:
            query = query.where(runs.c.thread_id == thread_id)
        row = await self.db.read(first, query)
        if row is None:
            raise NotFound(f"run {run_id} not found")
        return row

    async def list(self, thread_id: str, *, limit=10, offset=0, status=None) -> list[dict[str, Any]]:
        query = select(runs).where(runs.c.thread_id == thread_id)
        if status:
            query = query.where(runs.c.status == status)
        query = query.order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit).offset(offset)
        return await self.db.read(lambda conn: [row_dict(r) for r in conn.execute(query).all()])

    async def finish(
        self,
        run: dict[str, Any],
        *,
        status: str,
        thread_status: str,
        values: Any,
        interrupts: dict | None,
        error: dict | None = None,
        owner: str | None = None,
        events: list[dict[str, Any]] | None = None,
        thread_expires_in: float | None = None,
        thread_error: dict | None = None,
    ) -> bool:
        """Record a run's end and its thread's new state in one transaction; True when another run of the
        thread is still pending or running (the thread then stays busy).

        `interrupts=None` leaves the thread's recorded state as it was. `error` becomes the run's error and the
        thread's (which a run without one clears). With `owner`, the end is recorded only if that process still
        holds the run (else TakenOver): where processes share the database, one that lost its lease must not
        end a run another has resumed. `events`: the run's last persisted events, written with its end.
        `thread_error`: the thread's error when it is not the run's (a cancel's, see RunManager.cancel_error).
        `thread_expires_in`: seconds after which the sweeper deletes the thread (a temporary one left to another
        process to delete).
        """
        now = utcnow()
        thread_id = run["thread_id"]
        holder = select(runs.c.owner, runs.c.status).where(runs.c.run_id == run["run_id"])

        def finish(conn: Connection) -> bool:
            _lock_thread(conn, thread_id)
            if owner is not None:
                held = conn.execute(holder).first()
                if held is not None and (held.owner != owner or held.status not in ACTIVE):
                    raise TakenOver(run["run_id"])  # resumed elsewhere, perhaps ended there already
            params = {"b_run_id": run["run_id"], "b_status": status, "b_now": now}
            if error is None:
                still_there = _SET_STATUS.execute(conn, params)
            else:
                still_there = _SET_STATUS_AND_ERROR.execute(conn, {**params, "b_error": error})
            params = {
                "b_thread_id": thread_id, "b_status": thread_status, "b_now": now,
                "b_error": error if thread_error is None else thread_error,
            }
            if interrupts is None:
                ended = _END_THREAD_TURN.first(conn, params)
            else:
                ended = _END_THREAD_TURN_WITH_STATE.first(conn, {**params, "b_values": values, "b_interrupts": interrupts})
            if events and still_there:  # a run deleted meanwhile (with its thread) has nowhere to keep them
                _INSERT_EVENTS.execute_many(conn, events)
            if thread_expires_in is not None:
                expires_at = now + timedelta(seconds=thread_expires_in)
                conn.execute(update(threads).where(threads.c.thread_id == thread_id).values(expires_at=expires_at))
            return ended is not None and ended["status"] == "busy"

        return await self.db.write(finish)

    async def delete(self, run_id: str, thread_id: str | None = None) -> None:
        query = delete(runs).where(runs.c.run_id == run_id)
        if thread_id is not None:
            query = query.where(runs.c.thread_id == thread_id)
        if await self.db.write(lambda conn: conn.execute(query).rowcount) == 0:
            raise NotFound(f"run {run_id} not found")

    # ---- persisted events (readers on other processes) ---------------------------------------------------------

    async def append_events(self, rows: list[dict[str, Any]]) -> None:
        await self.db.write(_INSERT_EVENTS_OF_RUNS_STILL_THERE.execute_many, rows)

    async def read_events(self, run_id: str, start: int) -> list[tuple[int, str, bytes]]:
        query = (
            select(run_events.c.seq, run_events.c.event, run_events.c.data)
            .where(run_events.c.run_id == run_id, run_events.c.seq >= start)
            .order_by(run_events.c.seq)
        )
        return await self.db.read(lambda conn: [tuple(r) for r in conn.execute(query).all()])

    async def thread_events(
        self, thread_id: str, created_since: datetime, last: int
    ) -> list[tuple[str, datetime, int, str, bytes]]:
        """The `last` stored events of a thread's runs created since then: (run_id, run's created_at, seq, event,
        data), in the order the thread ran them."""
        query = (
            select(runs.c.run_id, runs.c.created_at, run_events.c.seq, run_events.c.event, run_events.c.data)
            .join(run_events, run_events.c.run_id == runs.c.run_id)
            .where(runs.c.thread_id == thread_id, runs.c.created_at >= created_since)
            .order_by(runs.c.created_at.desc(), runs.c.run_id.desc(), run_events.c.seq.desc())
            .limit(last)
        )
        return await self.db.read(lambda conn: [tuple(r) for r in reversed(conn.execute(query).all())])

    async def forget_events(
        self, idle_since: datetime, after: tuple[datetime, str] | None, limit: int = 200
    ) -> tuple[int, tuple[datetime, str]]:
        """Delete the stored events of the ended runs of up to `limit` threads unchanged since `idle_since`, in the
        order they last changed, from past `after` on: where the previous call stopped, so that no thread is read
        twice while it stays idle (one that changes again moves past it). By thread rather than by run, so that a
        thread in use keeps the whole history its thread-protocol numbering is read from (RunManager.
        thread_log_with_history). Returns how many threads it took and where the next call starts (past
        `idle_since` once every thread before it was seen)."""
        has_events = exists().where(
            run_events.c.run_id == runs.c.run_id, runs.c.thread_id == threads.c.thread_id, ~_IS_ACTIVE
        )
        query = (
            select(threads.c.thread_id, threads.c.updated_at)
            .where(threads.c.updated_at < idle_since, has_events)
            .order_by(threads.c.updated_at, threads.c.thread_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(tuple_(threads.c.updated_at, threads.c.thread_id) > tuple_(*after))
        taken = await self.db.read(lambda conn: conn.execute(query).all())
        if taken:  # only then a write: on SQLite every write transaction takes the file's write lock
            taken_ids = [row.thread_id for row in taken]
            ended_runs = select(runs.c.run_id).where(runs.c.thread_id.in_(taken_ids), ~_IS_ACTIVE)
            forgotten = delete(run_events).where(run_events.c.run_id.in_(ended_runs))
            await self.db.write(lambda conn: conn.execute(forgotten))
        if len(taken) < limit:
            return len(taken), (idle_since, "")
        return len(taken), (taken[-1].updated_at, taken[-1].thread_id)

    async def last_event_seq(self, run_id: str) -> int:
        query = select(func.max(run_events.c.seq)).where(run_events.c.run_id == run_id)
        value = await self.db.read(lambda conn: conn.execute(query).scalar())
        return -1 if value is None else value

    async def queue_stats(self) -> tuple[int, Any]:
        """(how many runs are pending, when the oldest of them was created or None): the queue an operator
        watches. Reads the status index only."""
        query = select(func.count(), func.min(runs.c.created_at)).where(runs.c.status == "pending")

        def stats(conn: Connection) -> tuple[int, Any]:
            count, oldest = conn.execute(query).one()
            return int(count), oldest

        return await self.db.read(stats)


def _holds_turn(table, now):
    """A run that has its thread's turn: claimed under a live lease, whether already running or about to."""
    return and_(_is_active(table), table.c.owner.is_not(None), table.c.lease_until >= now)
