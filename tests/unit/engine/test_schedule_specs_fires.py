"""ScheduleSpec: when cron lines, intervals and calendar entries fire.

Expected fire times were worked out by hand from a calendar (2026-01-01 is a Thursday; US DST 2026 runs
from Sunday 2026-03-08 02:00 EST to Sunday 2026-11-01 02:00 EDT; EU DST from Sunday 2026-03-29 02:00 CET to
Sunday 2026-10-25 03:00 CEST) and are written with the offset of the spec's time zone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from spec_times import BERLIN, EPOCH, NEW_YEAR, NY, iso, ms, utc, walk

from engine import CalendarSpec, ScheduleSpec

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
