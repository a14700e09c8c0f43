"""ScheduleSpec across DST, within start_at / end_at, fires_between, count_fires and jitter.

Expected fire times were worked out by hand from a calendar (2026-01-01 is a Thursday; US DST 2026 runs
from Sunday 2026-03-08 02:00 EST to Sunday 2026-11-01 02:00 EDT; EU DST from Sunday 2026-03-29 02:00 CET to
Sunday 2026-10-25 03:00 CEST) and are written with the offset of the spec's time zone.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from spec_times import BERLIN, NEW_YEAR, NY, iso, ms, utc, walk

from engine import CalendarSpec, ScheduleSpec, ScheduleSpecError

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
