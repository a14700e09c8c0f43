"""Durations: strings like ``"1h30m"``, seconds, timedeltas -> integer milliseconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Union

from ._errors import InvalidDurationError

Duration = Union[str, int, float, timedelta]
"""Anything ``parse_duration`` accepts."""

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
# "ms" must be tried before "m" and "s": the alternation order matters.
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)


def parse_duration(value: Duration) -> int:
    """Convert a duration to whole milliseconds.

    Args:
        value: ``"30s" "5m" "2h" "1d" "1w" "1h30m" "500ms"`` (components may repeat
            and be separated by spaces), int/float seconds, or a ``timedelta``.

    Returns:
        The duration in milliseconds (rounded to the nearest millisecond).

    Raises:
        InvalidDurationError: (a ``ValueError``) for a malformed string, a negative
            value, or an unsupported type.
    """
    if isinstance(value, bool):
        raise InvalidDurationError(f"invalid duration {value!r}: a bool is not a duration")
    if isinstance(value, str):
        return _parse_string(value)
    if isinstance(value, (int, float)):
        return _non_negative(round(value * 1000), value)
    if isinstance(value, timedelta):
        return _non_negative(round(value.total_seconds() * 1000), value)
    raise InvalidDurationError(f"invalid duration {value!r}: expected a string like '1h30m', seconds, or a timedelta")


def datetime_to_ms(when: datetime) -> int:
    """Epoch milliseconds of ``when``; a naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return round(when.timestamp() * 1000)


def _parse_string(text: str) -> int:
    pos = 0
    total = 0.0
    stripped = text.rstrip()
    while pos < len(stripped):
        match = _PART.match(stripped, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNIT_MS[match.group(2).lower()]
        pos = match.end()
    if pos == 0 or pos != len(stripped):
        raise InvalidDurationError(
            f"invalid duration {text!r}: expected number+unit parts such as '30s', '5m', "
            "'2h', '1d', '1w', '500ms' or '1h30m'"
        )
    return round(total)


def _non_negative(ms: int, original: object) -> int:
    if ms < 0:
        raise InvalidDurationError(f"invalid duration {original!r}: must not be negative")
    return ms
