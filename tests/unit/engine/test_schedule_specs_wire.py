"""ScheduleSpec: normalisation, the wire form, validation with readable errors, and the overlap policies."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from spec_times import BERLIN, NEW_YEAR, NY, ms, walk

from engine import CalendarSpec, KflowError, OverlapPolicy, ScheduleSpec, ScheduleSpecError

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
