"""ScheduleSpec: when cron lines, intervals and calendar entries fire, DST, bounds, jitter and the wire form.

Expected fire times were worked out by hand from a calendar (2026-01-01 is a Thursday; US DST 2026 runs
from Sunday 2026-03-08 02:00 EST to Sunday 2026-11-01 02:00 EDT; EU DST from Sunday 2026-03-29 02:00 CET to
Sunday 2026-10-25 03:00 CEST) and are written with the offset of the spec's time zone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine import CalendarSpec, KflowError, OverlapPolicy, ScheduleSpec, ScheduleSpecError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NEW_YEAR = "2026-01-01T00:00:00+00:00"
NY = "America/New_York"
BERLIN = "Europe/Berlin"


def ms(text: str) -> int:
    """Epoch ms of an ISO time with an offset."""
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(milliseconds=1)


def walk(spec: ScheduleSpec, after: str, count: int) -> list[str]:
    """The next ``count`` fires after ``after``, as ISO times on the spec's wall clock."""
    fires: list[str] = []
    at = ms(after)
    for _ in range(count):
        fire = spec.next_fire(at)
        assert fire is not None, f"no fire after {fires}"
        fires.append(iso(fire, spec.timezone))
        at = fire
    return fires


def iso(epoch_ms: int, zone: str = "UTC") -> str:
    return (EPOCH + timedelta(milliseconds=epoch_ms)).astimezone(ZoneInfo(zone)).isoformat()


def utc(*times: str) -> list[str]:
    """Shorthand: 'YYYY-MM-DDTHH:MM' in UTC -> full ISO strings."""
    return [f"{t}:00+00:00" for t in times]


# --- cron ---------------------------------------------------------------------------------------------

CRON_CASES = [
    ("* * * * *", utc("2026-01-01T00:01", "2026-01-01T00:02", "2026-01-01T00:03")),
    ("0 * * * *", utc("2026-01-01T01:00", "2026-01-01T02:00", "2026-01-01T03:00")),
    ("5,35 * * * *", utc("2026-01-01T00:05", "2026-01-01T00:35", "2026-01-01T01:05")),
    ("10-12 3 * * *", utc("2026-01-01T03:10", "2026-01-01T03:11", "2026-01-01T03:12", "2026-01-02T03:10")),
    ("*/20 * * * *", utc("2026-01-01T00:20", "2026-01-01T00:40", "2026-01-01T01:00")),
    ("10-50/20 * * * *", utc("2026-01-01T00:10", "2026-01-01T00:30", "2026-01-01T00:50", "2026-01-01T01:10")),
    ("0 */6 * * *", utc("2026-01-01T06:00", "2026-01-01T12:00", "2026-01-01T18:00", "2026-01-02T00:00")),
    ("23 0-20/2 * * *", utc("2026-01-01T00:23", "2026-01-01T02:23", "2026-01-01T04:23")),
    ("0 9 * * MON-FRI", utc("2026-01-01T09:00", "2026-01-02T09:00", "2026-01-05T09:00")),
    ("0 9 * * mon,Wed", utc("2026-01-05T09:00", "2026-01-07T09:00", "2026-01-12T09:00")),
    ("0 22 * * 1-5", utc("2026-01-01T22:00", "2026-01-02T22:00", "2026-01-05T22:00")),
    ("0 0 1 JAN-MAR *", utc("2026-02-01T00:00", "2026-03-01T00:00", "2027-01-01T00:00")),
    ("0 0 1 */4 *", utc("2026-05-01T00:00", "2026-09-01T00:00", "2027-01-01T00:00")),
    ("0 0 1 jun,dec *", utc("2026-06-01T00:00", "2026-12-01T00:00", "2027-06-01T00:00")),
    ("0 0 1,15 * *", utc("2026-01-15T00:00", "2026-02-01T00:00", "2026-02-15T00:00")),
    ("15 14 1 * *", utc("2026-01-01T14:15", "2026-02-01T14:15", "2026-03-01T14:15")),
    ("0 0 * * 0", utc("2026-01-04T00:00", "2026-01-11T00:00", "2026-01-18T00:00")),
    ("0 0 * * 7", utc("2026-01-04T00:00", "2026-01-11T00:00", "2026-01-18T00:00")),
    ("0 0 * * SUN", utc("2026-01-04T00:00", "2026-01-11T00:00", "2026-01-18T00:00")),
    ("0 0 * * 5-7", utc("2026-01-02T00:00", "2026-01-03T00:00", "2026-01-04T00:00", "2026-01-09T00:00")),
    ("0 0 * * SAT,7", utc("2026-01-03T00:00", "2026-01-04T00:00", "2026-01-10T00:00")),
    ("0 12 31 * *", utc("2026-01-31T12:00", "2026-03-31T12:00", "2026-05-31T12:00")),
    ("0 0 29 2 *", utc("2028-02-29T00:00", "2032-02-29T00:00")),
    # Both day fields restricted: a day matches if EITHER does (the 13th, or any Friday).
    ("0 0 13 * FRI", utc("2026-01-02T00:00", "2026-01-09T00:00", "2026-01-13T00:00", "2026-01-16T00:00")),
    (
        "0 0 1 * MON",
        utc(
            "2026-01-05T00:00",
            "2026-01-12T00:00",
            "2026-01-19T00:00",
            "2026-01-26T00:00",
            "2026-02-01T00:00",
            "2026-02-02T00:00",
        ),
    ),
    # A day field containing "*" is unrestricted (Vixie cron): then both must match (odd days AND Fridays).
    ("0 0 */2 * FRI", utc("2026-01-09T00:00", "2026-01-23T00:00", "2026-02-13T00:00")),
    ("0 0 * 2 MON", utc("2026-02-02T00:00", "2026-02-09T00:00", "2026-02-16T00:00")),
    ("@yearly", utc("2027-01-01T00:00", "2028-01-01T00:00")),
    ("@annually", utc("2027-01-01T00:00", "2028-01-01T00:00")),
    ("@monthly", utc("2026-02-01T00:00", "2026-03-01T00:00")),
    ("@weekly", utc("2026-01-04T00:00", "2026-01-11T00:00")),
    ("@daily", utc("2026-01-02T00:00", "2026-01-03T00:00")),
    ("@midnight", utc("2026-01-02T00:00", "2026-01-03T00:00")),
    ("@hourly", utc("2026-01-01T01:00", "2026-01-01T02:00")),
    (" @Daily ", utc("2026-01-02T00:00", "2026-01-03T00:00")),
    ("  0   12  *  *  *  ", utc("2026-01-01T12:00", "2026-01-02T12:00")),
]


@pytest.mark.parametrize(("cron", "expected"), CRON_CASES)
def test_cron_fires(cron: str, expected: list[str]) -> None:
    assert walk(ScheduleSpec(cron=cron), NEW_YEAR, len(expected)) == expected


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ("2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00"),  # strictly after a fire
        ("2026-01-01T00:00:59.999+00:00", "2026-01-01T00:01:00+00:00"),  # any ms value
        ("2026-01-01T00:00:00.001+00:00", "2026-01-01T00:01:00+00:00"),
        ("2025-12-31T23:59:59.999+00:00", "2026-01-01T00:00:00+00:00"),
        ("2026-12-31T23:59:00+00:00", "2027-01-01T00:00:00+00:00"),  # year rollover
    ],
)
def test_next_fire_is_strictly_after_and_on_a_whole_second(after: str, expected: str) -> None:
    fire = ScheduleSpec(cron="* * * * *").next_fire(ms(after))
    assert fire is not None and iso(fire) == expected and fire % 1000 == 0


def test_cron_before_the_epoch_and_near_the_end_of_time() -> None:
    assert ScheduleSpec(cron="@daily").next_fire(-1) == 0
    assert ScheduleSpec(cron="@daily").next_fire(ms("9999-12-31T00:00:00+00:00")) is None
    assert ScheduleSpec(interval="1h").next_fire(ms("9999-12-31T00:00:00+00:00")) is None


def test_day_names_and_month_names_equal_their_numbers() -> None:
    named = ScheduleSpec(cron="0 6 * JAN-JUN/2 MON-FRI")
    numbered = ScheduleSpec(cron="0 6 * 1-6/2 1-5")
    assert walk(named, NEW_YEAR, 40) == walk(numbered, NEW_YEAR, 40)


Wall = Callable[[datetime], bool]

ORACLE_CASES: list[tuple[str, str, str, Wall]] = [
    # (cron, zone, window start, predicate on the local wall time; weekday(): Monday = 0)
    (
        "*/15 9-17 * * MON-FRI",
        "UTC",
        "2026-01-01",
        lambda t: t.minute % 15 == 0 and 9 <= t.hour <= 17 and t.weekday() < 5,
    ),
    ("0 0 13 * FRI", "UTC", "2026-01-01", lambda t: t.hour == t.minute == 0 and (t.day == 13 or t.weekday() == 4)),
    ("0 0 */2 * FRI", "UTC", "2026-01-01", lambda t: t.hour == t.minute == 0 and t.day % 2 == 1 and t.weekday() == 4),
    ("5 4 1-7 * SUN", "UTC", "2026-02-20", lambda t: (t.hour, t.minute) == (4, 5) and (t.day <= 7 or t.weekday() == 6)),
    (
        "0 12 * JAN,MAR */3",
        "UTC",
        "2026-01-10",
        lambda t: (t.hour, t.minute) == (12, 0) and t.month in (1, 3) and (t.weekday() + 1) % 7 in (0, 3, 6),
    ),
    ("0 * * * *", NY, "2026-03-01", lambda t: t.minute == 0),
    ("30 1 * * *", NY, "2026-10-20", lambda t: (t.hour, t.minute) == (1, 30)),
    ("*/10 1-2 * * *", NY, "2026-10-25", lambda t: t.minute % 10 == 0 and t.hour in (1, 2)),
    ("30 2 * * *", BERLIN, "2026-03-20", lambda t: (t.hour, t.minute) == (2, 30)),
    ("30 2 * * *", BERLIN, "2026-10-15", lambda t: (t.hour, t.minute) == (2, 30)),
]


@pytest.mark.parametrize(
    ("cron", "zone", "day", "wall"), ORACLE_CASES, ids=[f"{c[0]}@{c[1]}@{c[2]}" for c in ORACLE_CASES]
)
def test_cron_agrees_with_a_minute_by_minute_scan(cron: str, zone: str, day: str, wall: Wall) -> None:
    """Over 40 days: every UTC minute whose wall time matches, first occurrence only (fold=0)."""
    start = datetime.fromisoformat(f"{day}T00:00:00+00:00")
    minutes = (start + timedelta(minutes=i) for i in range(40 * 24 * 60))
    expected = [t for t in minutes if (local := t.astimezone(ZoneInfo(zone))).fold == 0 and wall(local)]
    first = (start - EPOCH) // timedelta(milliseconds=1)
    fires = ScheduleSpec(cron=cron, timezone=zone).fires_between(first, first + 40 * 86_400_000, 10_000)
    assert [iso(t) for t in fires] == [t.isoformat() for t in expected]
    assert fires


# --- intervals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "start_at", "after", "expected"),
    [
        # no start_at: anchored at the Unix epoch, so an hourly interval fires on the hour
        ("1h", None, "2026-01-01T10:20:00+00:00", utc("2026-01-01T11:00", "2026-01-01T12:00")),
        ("1h", None, "2026-01-01T11:00:00+00:00", utc("2026-01-01T12:00", "2026-01-01T13:00")),
        (5400, None, NEW_YEAR, utc("2026-01-01T01:30", "2026-01-01T03:00")),
        ("1h30m", None, NEW_YEAR, utc("2026-01-01T01:30", "2026-01-01T03:00")),
        (timedelta(minutes=45), None, NEW_YEAR, utc("2026-01-01T00:45", "2026-01-01T01:30")),
        ("1d", None, "2026-01-01T12:00:00+00:00", utc("2026-01-02T00:00", "2026-01-03T00:00")),
        (30.0, None, NEW_YEAR, ["2026-01-01T00:00:30+00:00", "2026-01-01T00:01:00+00:00"]),
        # start_at: the anchor; the first fire is start_at itself
        (
            "1h",
            "2026-01-01T00:20:00+00:00",
            "2025-06-01T00:00:00+00:00",
            utc("2026-01-01T00:20", "2026-01-01T01:20", "2026-01-01T02:20"),
        ),
        ("1h", "2026-01-01T00:20:00+00:00", "2026-01-01T05:00:00+00:00", utc("2026-01-01T05:20", "2026-01-01T06:20")),
        ("1h", "2026-01-01T00:20:00+00:00", "2026-01-01T05:20:00+00:00", utc("2026-01-01T06:20")),
        ("7m", "2026-01-01T00:00:00+00:00", "2026-01-01T01:00:00+00:00", utc("2026-01-01T01:03", "2026-01-01T01:10")),
        # a start_at with milliseconds anchors on the next whole second
        (
            "1h",
            "2026-01-01T00:20:00.250+00:00",
            "2025-06-01T00:00:00+00:00",
            ["2026-01-01T00:20:01+00:00", "2026-01-01T01:20:01+00:00"],
        ),
    ],
)
def test_interval_fires(
    interval: str | int | float | timedelta, start_at: str | None, after: str, expected: list[str]
) -> None:
    spec = ScheduleSpec(interval=interval, start_at=None if start_at is None else ms(start_at))
    assert walk(spec, after, len(expected)) == expected


def test_interval_ignores_the_time_zone_across_dst() -> None:
    after = "2026-03-08T05:30:00+00:00"
    in_utc = walk(ScheduleSpec(interval="1h"), after, 4)
    in_ny = walk(ScheduleSpec(interval="1h", timezone=NY), after, 4)
    assert [ms(t) for t in in_ny] == [ms(t) for t in in_utc]
    assert in_ny == [
        "2026-03-08T01:00:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T04:00:00-04:00",
        "2026-03-08T05:00:00-04:00",
    ]


# --- calendars ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (
            [CalendarSpec(hour=9), CalendarSpec(hour=17, minute=30)],
            utc("2026-01-01T09:00", "2026-01-01T17:30", "2026-01-02T09:00"),
        ),
        ((CalendarSpec(hour=12, second=30),), ["2026-01-01T12:00:30+00:00", "2026-01-02T12:00:30+00:00"]),
        (
            [CalendarSpec(day_of_month=13, day_of_week=5)],  # both must match: Friday the 13th
            utc("2026-02-13T00:00", "2026-03-13T00:00", "2026-11-13T00:00"),
        ),
        ([CalendarSpec(month=7, day_of_month=4, hour=12)], utc("2026-07-04T12:00", "2027-07-04T12:00")),
        (
            [CalendarSpec(day_of_week=1, hour=8), CalendarSpec(day_of_month=1, hour=8)],
            utc(
                "2026-01-01T08:00",
                "2026-01-05T08:00",
                "2026-01-12T08:00",
                "2026-01-19T08:00",
                "2026-01-26T08:00",
                "2026-02-01T08:00",
                "2026-02-02T08:00",
            ),
        ),
        ([CalendarSpec(hour=6), CalendarSpec(hour=6)], utc("2026-01-01T06:00", "2026-01-02T06:00")),  # union: once
        ([CalendarSpec(month=2, day_of_month=29, day_of_week=1)], utc("2044-02-29T00:00")),  # a leap day on a Monday
        ([CalendarSpec()], utc("2026-01-02T00:00", "2026-01-03T00:00")),
    ],
)
def test_calendar_fires_at_the_union_of_its_entries(entries: list[CalendarSpec], expected: list[str]) -> None:
    spec = ScheduleSpec(calendar=entries)  # type: ignore[arg-type]  # a list is accepted and normalised
    assert walk(spec, NEW_YEAR, len(expected)) == expected


def test_calendar_on_a_wall_clock_follows_the_offset() -> None:
    spec = ScheduleSpec(calendar=(CalendarSpec(hour=8),), timezone=BERLIN)
    winter = spec.next_fire(ms("2026-01-15T00:00:00+00:00"))
    summer = spec.next_fire(ms("2026-07-15T00:00:00+00:00"))
    assert winter is not None and iso(winter) == "2026-01-15T07:00:00+00:00"
    assert summer is not None and iso(summer) == "2026-07-15T06:00:00+00:00"


# --- DST ----------------------------------------------------------------------------------------------

DST_CASES = [
    # New York, spring forward 2026-03-08: 02:00-02:59 does not exist and is skipped
    (NY, "30 2 * * *", "2026-03-07T00:00:00-05:00", ["2026-03-07T02:30:00-05:00", "2026-03-09T02:30:00-04:00"]),
    (
        NY,
        "0 * * * *",
        "2026-03-08T00:30:00-05:00",
        ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"],
    ),
    (NY, "*/30 * * * *", "2026-03-08T01:00:00-05:00", ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00"]),
    (NY, "0 3 * * *", "2026-03-07T12:00:00-05:00", ["2026-03-08T03:00:00-04:00", "2026-03-09T03:00:00-04:00"]),
    (NY, "30 2 8 3 *", NEW_YEAR, ["2027-03-08T02:30:00-05:00"]),  # 2026-03-08 02:30 does not exist
    # New York, fall back 2026-11-01: 01:00-01:59 happens twice and fires once, the first time (EDT)
    (
        NY,
        "30 1 * * *",
        "2026-10-30T12:00:00-04:00",
        ["2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    (
        NY,
        "0 * * * *",
        "2026-11-01T00:30:00-04:00",
        ["2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00"],
    ),
    (NY, "*/20 * * * *", "2026-11-01T01:50:00-04:00", ["2026-11-01T02:00:00-05:00"]),
    # asked from inside the repeated hour (its second pass): nothing fires again until 02:00 EST
    (NY, "*/20 * * * *", "2026-11-01T01:10:00-05:00", ["2026-11-01T02:00:00-05:00"]),
    (NY, "45 1 * * *", "2026-11-01T01:10:00-05:00", ["2026-11-02T01:45:00-05:00"]),
    # Berlin, spring forward 2026-03-29 (02:00 CET -> 03:00 CEST), fall back 2026-10-25 (03:00 CEST -> 02:00 CET)
    (BERLIN, "30 2 * * *", "2026-03-28T00:00:00+01:00", ["2026-03-28T02:30:00+01:00", "2026-03-30T02:30:00+02:00"]),
    (BERLIN, "0 * * * *", "2026-03-29T00:30:00+01:00", ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"]),
    (
        BERLIN,
        "30 2 * * *",
        "2026-10-24T00:00:00+02:00",
        ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
    ),
    (
        BERLIN,
        "0 * * * *",
        "2026-10-25T01:30:00+02:00",
        ["2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00", "2026-10-25T04:00:00+01:00"],
    ),
]


@pytest.mark.parametrize(("zone", "cron", "after", "expected"), DST_CASES)
def test_cron_on_a_wall_clock_across_dst(zone: str, cron: str, after: str, expected: list[str]) -> None:
    assert walk(ScheduleSpec(cron=cron, timezone=zone), after, len(expected)) == expected


@pytest.mark.parametrize(
    ("zone", "hour", "after", "expected"),
    [
        (NY, 2, "2026-03-07T00:00:00-05:00", ["2026-03-07T02:15:10-05:00", "2026-03-09T02:15:10-04:00"]),
        (
            NY,
            1,
            "2026-10-31T00:00:00-04:00",
            ["2026-10-31T01:15:10-04:00", "2026-11-01T01:15:10-04:00", "2026-11-02T01:15:10-05:00"],
        ),
        (BERLIN, 2, "2026-03-28T00:00:00+01:00", ["2026-03-28T02:15:10+01:00", "2026-03-30T02:15:10+02:00"]),
        (BERLIN, 2, "2026-10-25T00:00:00+02:00", ["2026-10-25T02:15:10+02:00", "2026-10-26T02:15:10+01:00"]),
    ],
)
def test_calendar_across_dst(zone: str, hour: int, after: str, expected: list[str]) -> None:
    spec = ScheduleSpec(calendar=(CalendarSpec(hour=hour, minute=15, second=10),), timezone=zone)
    assert walk(spec, after, len(expected)) == expected


def test_a_rule_only_a_dst_gap_matches_never_fires_and_the_search_ends() -> None:
    # Sunday March 8 is always the US spring-forward day (second Sunday of March), so 02:30 never exists.
    spec = ScheduleSpec(
        calendar=(CalendarSpec(month=3, day_of_month=8, day_of_week=0, hour=2, minute=30),), timezone=NY
    )
    assert spec.next_fire(ms(NEW_YEAR)) is None
    assert spec.fires_between(ms(NEW_YEAR), ms("2100-01-01T00:00:00+00:00"), 10) == []


# --- start_at / end_at --------------------------------------------------------------------------------


def test_start_at_is_inclusive_and_end_at_is_inclusive() -> None:
    spec = ScheduleSpec(cron="@daily", start_at=ms("2026-01-10T00:00:00+00:00"), end_at=ms("2026-01-12T00:00:00+00:00"))
    assert walk(spec, NEW_YEAR, 3) == utc("2026-01-10T00:00", "2026-01-11T00:00", "2026-01-12T00:00")
    assert spec.next_fire(ms("2026-01-12T00:00:00+00:00")) is None
    assert spec.next_fire(ms("2027-01-01T00:00:00+00:00")) is None


def test_no_fire_before_a_start_at_with_milliseconds() -> None:
    spec = ScheduleSpec(cron="@daily", start_at=ms("2026-01-10T00:00:00.001+00:00"))
    assert walk(spec, NEW_YEAR, 1) == utc("2026-01-11T00:00")


def test_end_at_stops_intervals_and_calendars() -> None:
    end = ms("2026-01-01T02:00:00+00:00")
    interval = ScheduleSpec(interval="1h", end_at=end)
    assert walk(interval, NEW_YEAR, 2) == utc("2026-01-01T01:00", "2026-01-01T02:00")
    assert interval.next_fire(end) is None
    calendar = ScheduleSpec(calendar=(CalendarSpec(hour=3),), end_at=end)
    assert calendar.next_fire(ms(NEW_YEAR)) is None


def test_times_accept_aware_datetimes() -> None:
    start = datetime(2026, 1, 1, 9, 0, tzinfo=ZoneInfo(NY))
    spec = ScheduleSpec(interval="1h", start_at=start, end_at=datetime(2026, 1, 2, tzinfo=UTC))  # type: ignore[arg-type]
    assert spec.start_at == ms("2026-01-01T14:00:00+00:00")
    assert spec.end_at == ms("2026-01-02T00:00:00+00:00")


# --- fires_between ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "start", "end", "expected"),
    [
        (
            ScheduleSpec(cron="0 * * * *"),
            "2026-01-01T00:00:00+00:00",
            "2026-01-01T03:00:00+00:00",
            utc("2026-01-01T00:00", "2026-01-01T01:00", "2026-01-01T02:00"),
        ),  # start inclusive, end exclusive
        (
            ScheduleSpec(cron="0 * * * *"),
            "2026-01-01T00:00:00.001+00:00",
            "2026-01-01T03:00:00.001+00:00",
            utc("2026-01-01T01:00", "2026-01-01T02:00", "2026-01-01T03:00"),
        ),
        (ScheduleSpec(cron="0 * * * *"), "2026-01-01T03:00:00+00:00", "2026-01-01T03:00:00+00:00", []),
        (ScheduleSpec(cron="0 * * * *"), "2026-01-01T05:00:00+00:00", "2026-01-01T03:00:00+00:00", []),
        (
            ScheduleSpec(
                interval="30m", start_at=ms("2026-01-01T01:10:00+00:00"), end_at=ms("2026-01-01T02:10:00+00:00")
            ),
            NEW_YEAR,
            "2026-01-02T00:00:00+00:00",
            utc("2026-01-01T01:10", "2026-01-01T01:40", "2026-01-01T02:10"),
        ),
        (
            ScheduleSpec(calendar=(CalendarSpec(hour=18), CalendarSpec(hour=6))),
            NEW_YEAR,
            "2026-01-02T12:00:00+00:00",
            utc("2026-01-01T06:00", "2026-01-01T18:00", "2026-01-02T06:00"),
        ),
        (
            ScheduleSpec(cron="0 * * * *", timezone=NY),
            "2026-11-01T04:00:00+00:00",
            "2026-11-01T08:00:00+00:00",
            utc("2026-11-01T04:00", "2026-11-01T05:00", "2026-11-01T07:00"),
        ),  # 01:00 EST (06:00Z) is the repeat
    ],
)
def test_fires_between(spec: ScheduleSpec, start: str, end: str, expected: list[str]) -> None:
    assert [iso(t) for t in spec.fires_between(ms(start), ms(end), 100)] == expected


def test_fires_between_allows_exactly_limit_fires_and_refuses_more() -> None:
    spec = ScheduleSpec(cron="0 * * * *")
    start, end = ms("2026-01-01T00:00:00+00:00"), ms("2026-01-01T03:00:00+00:00")
    assert len(spec.fires_between(start, end, 3)) == 3
    with pytest.raises(ScheduleSpecError, match="more than 2 fires"):
        spec.fires_between(start, end, 2)
    with pytest.raises(ScheduleSpecError, match="more than 1000 fires"):
        ScheduleSpec(cron="* * * * *").fires_between(start, ms("2027-01-01T00:00:00+00:00"), 1000)
    assert spec.fires_between(start, start, 0) == []
    with pytest.raises(ScheduleSpecError, match="limit"):
        spec.fires_between(start, end, -1)


# --- jitter -------------------------------------------------------------------------------------------


def test_jitter_is_deterministic_in_range_and_pinned_to_its_formula() -> None:
    spec = ScheduleSpec(cron="* * * * *", jitter="30s")
    nominal = ms(NEW_YEAR)
    expected = int.from_bytes(hashlib.sha256(f"sched-1@{nominal}".encode()).digest()[:8], "big") % 30_000
    assert spec.jitter_ms("sched-1", nominal) == expected
    assert ScheduleSpec(interval="1h", jitter=30).jitter_ms("sched-1", nominal) == expected  # only key/time/jitter
    delays = [spec.jitter_ms(key, nominal + i * 60_000) for key in ("a", "b", "c") for i in range(200)]
    assert all(0 <= d < 30_000 for d in delays)
    assert len(set(delays)) > 500  # spread, not constant
    assert delays == [spec.jitter_ms(key, nominal + i * 60_000) for key in ("a", "b", "c") for i in range(200)]


@pytest.mark.parametrize("jitter", [None, 0, "0s", timedelta(0)])
def test_no_jitter_is_zero(jitter: str | int | timedelta | None) -> None:
    assert ScheduleSpec(cron="@daily", jitter=jitter).jitter_ms("k", ms(NEW_YEAR)) == 0


def test_sub_second_jitter_stays_below_its_bound() -> None:
    spec = ScheduleSpec(cron="@daily", jitter="3ms")
    assert {spec.jitter_ms(str(i), 0) for i in range(100)} == {0, 1, 2}


# --- normalisation and the wire form ------------------------------------------------------------------


def test_fields_are_normalised_so_equal_meanings_compare_equal() -> None:
    a = ScheduleSpec(interval="1h30m", jitter="10s", start_at=datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]
    b = ScheduleSpec(interval=5400, jitter=timedelta(seconds=10), start_at=ms(NEW_YEAR))
    assert a == b and hash(a) == hash(b)
    assert a.interval == timedelta(minutes=90) and a.jitter == timedelta(seconds=10) and a.start_at == ms(NEW_YEAR)
    listed = ScheduleSpec(calendar=[CalendarSpec(hour=1)])  # type: ignore[arg-type]
    assert listed.calendar == (CalendarSpec(hour=1),)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.cron = "@daily"  # type: ignore[misc]


def test_to_wire_format() -> None:
    spec = ScheduleSpec(calendar=(CalendarSpec(hour=9, day_of_week=1),), timezone=NY, start_at=1, end_at=2, jitter="1m")
    assert spec.to_wire() == {
        "cron": None,
        "interval_ms": None,
        "timezone": NY,
        "start_at": 1,
        "end_at": 2,
        "jitter_ms": 60_000,
        "calendar": [{"second": 0, "minute": 0, "hour": 9, "day_of_month": None, "month": None, "day_of_week": 1}],
    }  # the default catch-up window is left out: a processor older than the field reads the spec
    assert ScheduleSpec(interval="5m", catchup_window="1h").to_wire()["catchup_window_ms"] == 3_600_000
    assert ScheduleSpec(interval="5m").to_wire()["interval_ms"] == 300_000


def test_the_catchup_window_defaults_to_a_minute_is_normalised_and_survives_the_wire() -> None:
    assert ScheduleSpec(interval="1s").catchup_window == timedelta(minutes=1)
    spec = ScheduleSpec(interval="1s", catchup_window="1h")
    assert spec.catchup_window == timedelta(hours=1) and spec.catchup_window_ms == 3_600_000
    assert spec == ScheduleSpec(interval=1, catchup_window=3600)
    assert ScheduleSpec.from_wire(json.loads(json.dumps(spec.to_wire()))) == spec
    assert ScheduleSpec(interval="1s", catchup_window=0).catchup_window_ms == 0
    # a spec written before the field existed reads with the default
    assert ScheduleSpec.from_wire({"interval_ms": 1000}).catchup_window == timedelta(minutes=1)
    with pytest.raises(ScheduleSpecError, match="catchup_window"):
        ScheduleSpec(interval="1s", catchup_window=-1)


@pytest.mark.parametrize(
    "spec",
    [
        ScheduleSpec(
            cron="*/5 9-17 * * MON-FRI",
            timezone=NY,
            start_at=ms(NEW_YEAR),
            end_at=ms("2027-01-01T00:00:00Z"),
            jitter="30s",
        ),
        ScheduleSpec(cron="@weekly"),
        ScheduleSpec(interval="1h30m"),
        ScheduleSpec(interval=timedelta(days=1), start_at=ms("2026-01-01T00:20:00.250Z"), jitter=0),
        ScheduleSpec(
            calendar=(
                CalendarSpec(hour=9, minute=5, second=3),
                CalendarSpec(day_of_month=13, day_of_week=5),
                CalendarSpec(month=12, day_of_month=25),
            ),
            timezone=BERLIN,
        ),
    ],
)
def test_wire_round_trip_through_json(spec: ScheduleSpec) -> None:
    text = json.dumps(spec.to_wire())
    back = ScheduleSpec.from_wire(json.loads(text))
    assert back == spec
    assert back.to_wire() == spec.to_wire()
    assert walk(back, NEW_YEAR, 5) == walk(spec, NEW_YEAR, 5)


def test_from_wire_fills_missing_keys_with_defaults() -> None:
    assert ScheduleSpec.from_wire({"cron": "@daily"}) == ScheduleSpec(cron="@daily")
    assert ScheduleSpec.from_wire({"calendar": [{"hour": 3}]}) == ScheduleSpec(calendar=(CalendarSpec(hour=3),))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cron": "@daily", "color": "red"}, "unknown keys 'color'"),
        ({"cron": 5}, "'cron' must be str"),
        ({"interval_ms": "5m"}, "'interval_ms' must be int"),
        ({"interval_ms": 1.5}, "'interval_ms' must be int"),
        ({"interval_ms": True}, "'interval_ms' must be int"),
        ({"cron": "@daily", "timezone": 1}, "'timezone' must be str"),
        ({"cron": "@daily", "start_at": "2026-01-01"}, "'start_at' must be int"),
        ({"cron": "@daily", "end_at": 1.0}, "'end_at' must be int"),
        ({"cron": "@daily", "jitter_ms": "1s"}, "'jitter_ms' must be int"),
        ({"calendar": {"hour": 1}}, "'calendar' must be list"),
        ({"calendar": [5]}, "calendar entry must be a mapping"),
        ({"calendar": [{"hour": 1, "weekday": 2}]}, "unknown keys 'weekday'"),
        ({"calendar": [{"hour": "9"}]}, "'hour' must be int"),
        ({"calendar": [{"hour": None}]}, "'hour' must be an int"),
        ({"calendar": [{"hour": 25}]}, "hour=25"),
        ({"calendar": []}, "non-empty"),
        ({}, "exactly one of cron, interval, calendar"),
        ({"interval_ms": 1500}, "whole number of seconds"),
        ({"cron": "@daily", "timezone": "Nowhere/City"}, "'Nowhere/City'"),
    ],
)
def test_from_wire_rejects_malformed_data(data: dict[str, object], message: str) -> None:
    with pytest.raises(ScheduleSpecError, match=_literal(message)):
        ScheduleSpec.from_wire(data)


def test_from_wire_rejects_a_non_mapping() -> None:
    with pytest.raises(ScheduleSpecError, match="mapping"):
        ScheduleSpec.from_wire(["cron"])  # type: ignore[arg-type]


# --- validation ---------------------------------------------------------------------------------------

SPEC_ERRORS: list[tuple[dict[str, object], str]] = [
    ({}, "exactly one of cron, interval, calendar; got none"),
    ({"cron": "@daily", "interval": "1h"}, "got cron, interval"),
    ({"interval": "1h", "calendar": (CalendarSpec(),)}, "got interval, calendar"),
    ({"cron": 5}, "cron must be a string, got 5"),
    ({"cron": ""}, "cron '': expected 5 fields"),
    ({"cron": "0 0 * * * *"}, "got 6 fields"),
    ({"cron": "* * * *"}, "got 4 fields"),
    ({"cron": "@reboot"}, "cron '@reboot': expected 5 fields"),
    ({"cron": "60 * * * *"}, "minute field '60': value 60 is out of range 0-59"),
    ({"cron": "* 24 * * *"}, "hour field '24': value 24 is out of range 0-23"),
    ({"cron": "* * 0 * *"}, "day-of-month field '0': value 0 is out of range 1-31"),
    ({"cron": "* * 32 * *"}, "day-of-month field '32': value 32 is out of range 1-31"),
    ({"cron": "* * * 13 *"}, "month field '13': value 13 is out of range 1-12"),
    ({"cron": "* * * 0 *"}, "month field '0': value 0 is out of range 1-12"),
    ({"cron": "* * * * 8"}, "day-of-week field '8': value 8 is out of range 0-7"),
    ({"cron": "*/0 * * * *"}, "minute field '*/0': step '0' must be a positive integer"),
    ({"cron": "*/x * * * *"}, "step 'x' must be a positive integer"),
    ({"cron": "5/15 * * * *"}, "minute field '5/15': a step needs a range or '*'"),
    ({"cron": "30-10 * * * *"}, "minute field '30-10': range '30-10' runs backwards"),
    ({"cron": "0 0 * * FRI-MON"}, "range 'FRI-MON' runs backwards"),
    ({"cron": "* * * FOO *"}, "month field 'FOO': 'FOO' is not a number or a name"),
    ({"cron": "* * * * FEB"}, "day-of-week field 'FEB': 'FEB' is not a number or a name"),
    ({"cron": "JAN * * * *"}, "minute field 'JAN': 'JAN' is not a number"),
    ({"cron": "1,,2 * * * *"}, "minute field '1,,2': '' is not a number"),
    ({"cron": "-1 * * * *"}, "minute field '-1': '' is not a number"),
    ({"cron": "0 0 30 2 *"}, "cron '0 0 30 2 *' never fires: day-of-month '30' does not occur in month '2'"),
    ({"cron": "0 0 31 4,6,9,11 *"}, "never fires"),
    ({"interval": 0}, "interval 0 must be a whole number of seconds > 0"),
    ({"interval": "0s"}, "interval '0s' must be"),
    ({"interval": "500ms"}, "interval '500ms' must be a whole number of seconds"),
    ({"interval": 1.5}, "interval 1.5 must be a whole number of seconds"),
    ({"interval": -5}, "interval: invalid duration -5: must not be negative"),
    ({"interval": "5x"}, "interval: invalid duration '5x'"),
    ({"interval": True}, "interval: invalid duration True"),
    ({"cron": "@daily", "jitter": "-1s"}, "jitter: invalid duration '-1s'"),
    ({"cron": "@daily", "jitter": "soon"}, "jitter: invalid duration 'soon'"),
    ({"cron": "@daily", "timezone": "Mars/Olympus"}, "timezone 'Mars/Olympus' is not a known IANA time zone"),
    ({"cron": "@daily", "timezone": ""}, "timezone '' is not a known"),
    ({"cron": "@daily", "timezone": "America"}, "timezone 'America' is not a known"),
    ({"cron": "@daily", "timezone": "../etc/passwd"}, "timezone '../etc/passwd' is not a known"),
    ({"cron": "@daily", "timezone": None}, "timezone must be an IANA name string, got None"),
    ({"cron": "@daily", "start_at": datetime(2026, 1, 1)}, "start_at=datetime.datetime(2026, 1, 1, 0, 0) is a naive"),
    ({"cron": "@daily", "end_at": datetime(2026, 1, 1)}, "end_at=datetime.datetime(2026, 1, 1, 0, 0) is a naive"),
    ({"cron": "@daily", "start_at": "2026-01-01"}, "start_at must be epoch milliseconds (int) or an aware datetime"),
    ({"cron": "@daily", "start_at": 1.5}, "start_at must be epoch milliseconds"),
    ({"cron": "@daily", "end_at": True}, "end_at must be epoch milliseconds"),
    ({"cron": "@daily", "start_at": 10, "end_at": 5}, "end_at=5 is before start_at=10"),
    ({"calendar": ()}, "calendar must be a non-empty tuple or list of CalendarSpec"),
    ({"calendar": "daily"}, "calendar must be a non-empty tuple or list"),
    ({"calendar": ({"hour": 1},)}, "calendar entry {'hour': 1} is not a CalendarSpec"),
]


@pytest.mark.parametrize(("kwargs", "message"), SPEC_ERRORS)
def test_invalid_specs_raise_a_readable_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ScheduleSpecError, match=_literal(message)) as info:
        ScheduleSpec(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"second": 60}, "CalendarSpec second=60: expected an int in 0-59"),
        ({"minute": -1}, "CalendarSpec minute=-1: expected an int in 0-59"),
        ({"hour": 24}, "CalendarSpec hour=24: expected an int in 0-23"),
        ({"hour": True}, "CalendarSpec hour=True: expected an int"),
        ({"hour": "9"}, "CalendarSpec hour='9'"),
        ({"hour": None}, "CalendarSpec hour=None: expected an int in 0-23"),
        ({"day_of_month": 0}, "CalendarSpec day_of_month=0: expected an int in 1-31 or None"),
        ({"day_of_month": 32}, "day_of_month=32"),
        ({"month": 13}, "CalendarSpec month=13: expected an int in 1-12 or None"),
        ({"day_of_week": 7}, "CalendarSpec day_of_week=7: expected an int in 0-6 or None"),
        ({"day_of_month": 30, "month": 2}, "CalendarSpec day_of_month=30 never occurs in month=2"),
        ({"day_of_month": 31, "month": 11}, "day_of_month=31 never occurs in month=11"),
    ],
)
def test_invalid_calendar_entries_raise_a_readable_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ScheduleSpecError, match=_literal(message)):
        CalendarSpec(**kwargs)  # type: ignore[arg-type]


def test_leap_day_calendar_entry_is_valid() -> None:
    assert CalendarSpec(month=2, day_of_month=29).day_of_month == 29


def test_schedule_spec_error_is_a_non_retryable_value_error() -> None:
    assert issubclass(ScheduleSpecError, KflowError) and issubclass(ScheduleSpecError, ValueError)
    assert ScheduleSpecError.retryable is False and ScheduleSpecError.__module__ == "engine"


# --- overlap policy -----------------------------------------------------------------------------------


def test_overlap_policy_values_are_the_wire_strings() -> None:
    assert [p.value for p in OverlapPolicy] == ["skip", "buffer_one", "buffer_all", "cancel_other", "allow_all"]
    assert OverlapPolicy("buffer_one") is OverlapPolicy.BUFFER_ONE
    assert OverlapPolicy.SKIP == "skip" and isinstance(OverlapPolicy.ALLOW_ALL, str)
    with pytest.raises(ValueError):
        OverlapPolicy("terminate_other")


def _literal(text: str) -> str:
    return re.escape(text)


def test_count_fires_is_exact_for_intervals_and_walks_cron_up_to_its_cap() -> None:
    hourly = ScheduleSpec(interval="1h", end_at=ms("2026-01-02T00:00:00Z"))
    start = ms(NEW_YEAR)
    assert hourly.count_fires(start, start + 10 * 3_600_000, cap=1) == 10  # [00:00, 10:00): cap is for walks
    assert hourly.count_fires(start, start + 100 * 3_600_000, cap=1) == 25  # clipped at end_at, inclusive
    assert hourly.count_fires(start + 1, start + 3_600_000, cap=1) == 0
    minutely = ScheduleSpec(cron="* * * * *")
    assert minutely.count_fires(start, start + 90 * 60_000, cap=1000) == 90
    assert minutely.count_fires(start, start + 90 * 60_000, cap=50) == 50
    assert len(minutely.fires_between(start, start + 90 * 60_000, 1000)) == 90
