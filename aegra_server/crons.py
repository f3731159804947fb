"""Crons: when a schedule fires next, and the scheduler that creates the runs.

Schedules are cron expressions (croniter: 5 fields, or 6–7 with seconds and year, and @daily-style aliases)
read in the cron's IANA time zone, UTC when it has none: "0 9 * * *" in Europe/Paris fires at 09:00 Paris
time in winter and in summer. Across a daylight-saving change we follow ISC cron: a time skipped when the
clocks go forward fires at the first valid minute after the jump, and when the clocks go back a job at a fixed
time of day fires once while a job whose minute or hour is a wildcard keeps running through the repeated hour.

The scheduler runs in every server process. It fires each due cron by first claiming it, moving its
`next_run_date` on with a conditional UPDATE (`CronRepository.claim`), and creating the run only when its
claim won; so several processes on one Postgres fire each occurrence exactly once. Claiming before creating
means a process that dies in between loses that occurrence rather than risking a duplicate. Missed occurrences
(the server was down) fire once, not once each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from aegra_server.api.schemas import RunCreate
from aegra_server.storage.database import utcnow
from aegra_server.storage.repositories import Repositories

log = logging.getLogger("aegra.crons")

# Upper bound on candidates examined for one next run; only DST skips ever need more than one.
MAX_CANDIDATES = 1000
# Upper bound on batches of due crons one tick fires (batch × this crons in all).
MAX_BATCHES = 1000


class InvalidCron(ValueError):
    """A schedule or time zone the server cannot use; `field` names the request field (reported as 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def zone(name: str | None) -> ZoneInfo:
    """The IANA time zone `name`; UTC for None."""
    if name is None:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    # A name is looked up as a file path: "Europe" is a directory and a very long name too long a file name.
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise InvalidCron("timezone", f"Invalid timezone {name!r}: not an IANA time zone name") from None


def _fixed_time_of_day(schedule: str) -> bool:
    """ISC cron's test: neither the minute nor the hour field is a wildcard."""
    text = schedule.strip()
    if text.startswith("@"):
        return text.lower() != "@hourly"
    fields = text.split()
    return len(fields) >= 2 and not (fields[0].startswith("*") or fields[1].startswith("*"))


def _repeats_earlier_wall_time(moment: datetime) -> bool:
    """True for the second occurrence of a wall time the clocks went back over (e.g. 02:30 CET after 02:30 CEST)."""
    wall = moment.replace(tzinfo=None)
    first = wall.replace(tzinfo=moment.tzinfo, fold=0)
    return first.astimezone(UTC) < moment.astimezone(UTC)


def next_run(schedule: str, timezone: str | None, after: datetime) -> datetime:
    """The first time strictly after `after` at which `schedule` fires in `timezone`, as an aware UTC datetime.

    Raises InvalidCron for an expression croniter rejects or one that never fires (e.g. "0 0 30 2 *").
    """
    tz = zone(timezone)
    after = after.replace(tzinfo=UTC) if after.tzinfo is None else after.astimezone(UTC)
    if not isinstance(schedule, str) or not schedule.strip():
        raise InvalidCron("schedule", "Invalid cron schedule: it is empty")
    fixed = _fixed_time_of_day(schedule)
    try:
        candidates = croniter(schedule, after.astimezone(tz))
        for _ in range(MAX_CANDIDATES):
            candidate = candidates.get_next(datetime)
            moment = candidate.astimezone(UTC)
            if moment <= after:
                continue
            if fixed and _repeats_earlier_wall_time(candidate):
                continue
            return moment
    except (ValueError, KeyError, TypeError, OverflowError) as exc:  # croniter's errors are ValueErrors
        raise InvalidCron("schedule", f"Invalid cron schedule {schedule!r}: {exc}") from None
    raise InvalidCron("schedule", f"Invalid cron schedule {schedule!r}: it never fires")


def run_payload(cron: dict[str, Any]) -> dict[str, Any]:
    """The payload `RunManager.create` takes for one firing of `cron`, built as the HTTP API builds it."""
    fields = {**cron["payload"], "assistant_id": cron["assistant_id"], "metadata": cron["metadata"]}
    if cron["thread_id"] is None:
        fields["on_completion"] = cron.get("on_run_completed") or "delete"
    payload = RunCreate.model_validate(fields).payload()
    if cron["payload"].get("auth"):
        payload["auth"] = cron["payload"]["auth"]  # the cron's creator, whom its runs act for
    return payload


class CronScheduler:
    """Fires due crons: `tick()` once, or `start()` a loop that ticks whenever the soonest cron is due.

    `clock` is the scheduler's idea of now (tests pass a fake one); the HTTP API also computes new crons'
    first run from it. `runs` is the RunManager (anything with `create(thread_id | None, payload)`).
    """

    def __init__(
        self,
        repos: Repositories,
        runs: Any,
        clock: Callable[[], datetime] = utcnow,
        *,
        max_sleep: float = 30.0,
        batch: int = 100,
    ) -> None:
        self.repos = repos
        self.runs = runs
        self.clock = clock
        self.max_sleep = max_sleep
        self.batch = batch
        self._task: asyncio.Task | None = None
        self._wakeup: asyncio.Event | None = None

    def now(self) -> datetime:
        now = self.clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    def next_run_date(self, schedule: str, timezone: str | None) -> datetime:
        """When a cron with this schedule, set up now, fires first."""
        return next_run(schedule, timezone, self.now())

    # ---- firing ---------------------------------------------------------------------------------------------

    async def tick(self) -> int:
        """Fire every due cron once; returns how many runs this scheduler created."""
        now = self.now()
        fired = 0
        for _ in range(MAX_BATCHES):  # a claimed cron is no longer due, so this ends
            due = await self.repos.crons.due(now, limit=self.batch)
            for cron in due:
                fired += await self._fire(cron, now)
            if len(due) < self.batch:
                break
        return fired

    async def _fire(self, cron: dict[str, Any], now: datetime) -> int:
        cron_id = cron["cron_id"]
        try:
            following = next_run(cron["schedule"], cron["timezone"], now)
        except InvalidCron as exc:
            # Stored before a time zone vanished from the system database, say: park it rather than retry.
            log.error("cron %s cannot be scheduled any more and will not fire again: %s", cron_id, exc)
            following = None
        try:
            if not await self.repos.crons.claim(cron_id, cron["next_run_date"], following):
                return 0  # another scheduler fired it, or it was just updated
            if following is None:
                return 0
            await self.runs.create(cron["thread_id"], run_payload(cron), webhook_checked=True)
        except Exception:
            log.exception("cron %s: creating its run failed; it fires again at %s", cron_id, following)
            return 0
        return 1

    # ---- the background loop --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name="aegra-cron-scheduler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Re-read the schedule now (a cron was created or changed); a no-op when the loop is not running."""
        if self._wakeup is not None:
            self._wakeup.set()

    async def _loop(self) -> None:
        assert self._wakeup is not None
        while True:
            self._wakeup.clear()  # before the tick: a wake-up during it makes the next wait return at once
            try:
                await self.tick()
                delay = await self._delay()
            except Exception:
                log.exception("cron scheduler tick failed")
                delay = self.max_sleep
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)

    async def _delay(self) -> float:
        soonest = await self.repos.crons.soonest(self.now())
        if soonest is None:
            return self.max_sleep
        # A small floor so a cron that stays due (its claim keeps failing) cannot spin the loop.
        return min(max((soonest - self.now()).total_seconds(), 0.01), self.max_sleep)


__all__ = ["CronScheduler", "InvalidCron", "next_run", "run_payload", "zone"]
