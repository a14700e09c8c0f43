from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine import InvalidDurationError
from engine.runtime import datetime_to_ms, parse_duration


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("30s", 30_000),
        ("5m", 300_000),
        ("2h", 7_200_000),
        ("1d", 86_400_000),
        ("1w", 604_800_000),
        ("1h30m", 5_400_000),
        ("500ms", 500),
        ("2d12h", 216_000_000),
        ("1m30s", 90_000),
        ("1h 30m", 5_400_000),
        ("1.5s", 1_500),
        ("0s", 0),
        ("1M", 60_000),
        ("10MS", 10),
    ],
)
def test_duration_strings(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (30, 30_000),
        (0, 0),
        (1.5, 1_500),
        (0.001, 1),
        (timedelta(hours=2, minutes=30), 9_000_000),
        (timedelta(milliseconds=250), 250),
    ],
)
def test_numbers_and_timedeltas(value: int | float | timedelta, ms: int) -> None:
    assert parse_duration(value) == ms


@pytest.mark.parametrize("bad", ["", "abc", "10", "5x", "1h30", "h", "-5s", "1h-30m", "s5"])
def test_bad_strings_raise_a_value_error_naming_the_input(bad: str) -> None:
    with pytest.raises(InvalidDurationError) as info:
        parse_duration(bad)
    assert isinstance(info.value, ValueError)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", [-1, -0.5, timedelta(seconds=-1), True, None, [1]])
def test_negative_and_wrong_types_raise(bad: object) -> None:
    with pytest.raises(InvalidDurationError):
        parse_duration(bad)  # type: ignore[arg-type]


def test_datetimes_aware_and_naive_utc() -> None:
    aware = datetime(2025, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    naive_utc = datetime(2025, 1, 1, 10, 0)
    assert datetime_to_ms(aware) == datetime_to_ms(naive_utc) == 1_735_725_600_000
