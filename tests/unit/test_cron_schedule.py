"""When a cron fires next: cron syntax, time zones, daylight-saving changes, and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from aegra_server.crons import InvalidCron, next_run, run_payload

PARIS = ZoneInfo("Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def runs(schedule: str, tz: str | None, after: datetime, count: int) -> list[datetime]:
    out = []
    for _ in range(count):
        after = next_run(schedule, tz, after)
        out.append(after)
    return out


def test_daily_in_utc_is_strictly_after():
    assert next_run("0 9 * * *", None, utc(2030, 1, 1, 8, 0)) == utc(2030, 1, 1, 9, 0)
    assert next_run("0 9 * * *", "UTC", utc(2030, 1, 1, 8, 59, 59)) == utc(2030, 1, 1, 9, 0)
    # Exactly at a firing time, the next one is the following day's.
    assert next_run("0 9 * * *", None, utc(2030, 1, 1, 9, 0)) == utc(2030, 1, 2, 9, 0)
    assert next_run("0 9 * * *", None, utc(2030, 1, 1, 9, 0, 0) + timedelta(microseconds=1)) == utc(2030, 1, 2, 9, 0)


def test_result_is_aware_utc_whatever_the_input():
    after = datetime(2030, 1, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))  # 08:00 UTC
    result = next_run("0 9 * * *", None, after)
    assert result == utc(2030, 1, 1, 9, 0)
    assert result.utcoffset() == timedelta(0)
    assert next_run("0 9 * * *", None, datetime(2030, 1, 1, 8, 0)) == utc(2030, 1, 1, 9, 0)  # naive = UTC


def test_common_expressions():
    after = utc(2030, 1, 1, 10, 32)  # a Tuesday
    assert next_run("*/5 * * * *", None, after) == utc(2030, 1, 1, 10, 35)
    assert next_run("* * * * *", None, after) == utc(2030, 1, 1, 10, 33)
    assert next_run("0 12 * * *", None, utc(2030, 1, 1, 14, 0)) == utc(2030, 1, 2, 12, 0)
    assert next_run("0 9 * * mon", None, after) == utc(2030, 1, 7, 9, 0)
    assert next_run("0 9-17 * * 1-5", None, after) == utc(2030, 1, 1, 11, 0)
    assert next_run("0 0 1 * *", None, after) == utc(2030, 2, 1, 0, 0)
    assert next_run("@daily", None, after) == utc(2030, 1, 2, 0, 0)
    assert next_run("@hourly", None, after) == utc(2030, 1, 1, 11, 0)
    assert next_run("0 0 29 2 *", None, after) == utc(2032, 2, 29, 0, 0)  # the next leap day


def test_nine_in_paris_follows_summer_time():
    # Winter: CET is UTC+1. Summer: CEST is UTC+2. The clocks go forward on 2030-03-31 and back on 2030-10-27.
    assert runs("0 9 * * *", "Europe/Paris", utc(2030, 3, 29, 12, 0), 3) == [
        utc(2030, 3, 30, 8, 0),
        utc(2030, 3, 31, 7, 0),
        utc(2030, 4, 1, 7, 0),
    ]
    assert runs("0 9 * * *", "Europe/Paris", utc(2030, 10, 26, 12, 0), 2) == [
        utc(2030, 10, 27, 8, 0),
        utc(2030, 10, 28, 8, 0),
    ]


def test_every_firing_of_a_year_is_at_nine_paris_time():
    after = utc(2030, 1, 1)
    seen = runs("0 9 * * *", "Europe/Paris", after, 365)
    local = [moment.astimezone(PARIS) for moment in seen]
    assert all((t.hour, t.minute) == (9, 0) for t in local)
    assert len({t.date() for t in local}) == 365
    assert seen == sorted(seen)


def test_new_york_and_other_zones():
    # EST is UTC-5; EDT (from 2030-03-10) UTC-4.
    assert next_run("30 8 * * *", "America/New_York", utc(2030, 1, 15)) == utc(2030, 1, 15, 13, 30)
    assert next_run("30 8 * * *", "America/New_York", utc(2030, 7, 15)) == utc(2030, 7, 15, 12, 30)
    assert next_run("0 9 * * *", "Asia/Kolkata", utc(2030, 1, 1)) == utc(2030, 1, 1, 3, 30)


def test_time_skipped_by_spring_forward_fires_once_just_after_the_jump():
    # 02:30 does not exist in Paris on 2030-03-31 (02:00 CET jumps to 03:00 CEST).
    assert runs("30 2 * * *", "Europe/Paris", utc(2030, 3, 30, 12, 0), 2) == [
        utc(2030, 3, 31, 1, 0),  # 03:00 CEST
        utc(2030, 4, 1, 0, 30),  # 02:30 CEST
    ]


def test_fixed_time_in_the_repeated_hour_fires_once():
    # 02:30 happens twice in Paris on 2030-10-27 (03:00 CEST goes back to 02:00 CET): fire at the first only.
    assert runs("30 2 * * *", "Europe/Paris", utc(2030, 10, 26, 12, 0), 2) == [
        utc(2030, 10, 27, 0, 30),
        utc(2030, 10, 28, 1, 30),
    ]
    # Asked during the second pass through 02:xx, after the first 02:30 fired: the next is the following day.
    assert next_run("30 2 * * *", "Europe/Paris", utc(2030, 10, 27, 1, 10)) == utc(2030, 10, 28, 1, 30)


def test_wildcard_schedule_keeps_running_through_the_repeated_hour():
    assert runs("*/30 * * * *", "Europe/Paris", utc(2030, 10, 26, 23, 45), 6) == [
        utc(2030, 10, 27, 0, 0),
        utc(2030, 10, 27, 0, 30),
        utc(2030, 10, 27, 1, 0),
        utc(2030, 10, 27, 1, 30),
        utc(2030, 10, 27, 2, 0),
        utc(2030, 10, 27, 2, 30),
    ]


@pytest.mark.parametrize(
    "schedule",
    ["", "   ", "bogus", "61 * * * *", "* * *", "0 25 * * *", "0 0 30 2 *", "H * * * *", "@reboot"],
)
def test_invalid_schedules_name_the_field(schedule):
    with pytest.raises(InvalidCron) as excinfo:
        next_run(schedule, None, utc(2030, 1, 1))
    assert excinfo.value.field == "schedule"
    assert "schedule" in str(excinfo.value)


# "Europe" is a directory of the time zone database, and a 300-character name is too long for a file name.
@pytest.mark.parametrize(
    "tz", ["Mars/Olympus_Mons", "UTC+02:00", "../etc/passwd", "", "Europe", pytest.param("x" * 300, id="300-chars")]
)
def test_unknown_timezones_name_the_field(tz):
    with pytest.raises(InvalidCron) as excinfo:
        next_run("0 9 * * *", tz, utc(2030, 1, 1))
    assert excinfo.value.field == "timezone"
    assert "timezone" in str(excinfo.value)


def test_run_payload_for_thread_and_stateless_crons():
    cron = {
        "cron_id": "c",
        "assistant_id": "a",
        "thread_id": "t",
        "payload": {"assistant_id": "a", "input": {"x": 1}, "stream_mode": "updates", "metadata": {"old": 1}},
        "metadata": {"tag": "new"},
        "on_run_completed": None,
    }
    payload = run_payload(cron)
    assert payload["assistant_id"] == "a"
    assert payload["input"] == {"x": 1}
    assert payload["stream_mode"] == ["updates"]
    assert payload["metadata"] == {"tag": "new"}  # the cron's current metadata
    assert payload["multitask_strategy"] == "enqueue"

    stateless = {**cron, "thread_id": None, "on_run_completed": "keep"}
    assert run_payload(stateless)["on_completion"] == "keep"
    assert run_payload({**stateless, "on_run_completed": None})["on_completion"] == "delete"
