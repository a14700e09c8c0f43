"""Day-and-time rules behind cron lines and calendar entries, and the cron parser.

Pure: no clock, no I/O. Instants are epoch milliseconds UTC; a rule matches the wall clock of a zone.
DST: a local time that does not exist (spring-forward gap) is skipped; a local time that occurs twice
(fall-back) fires once, at its first occurrence (``fold=0``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from ._errors import ScheduleSpecError

_UTC = UTC
EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
ONE_MS = timedelta(milliseconds=1)
_ONE_DAY = timedelta(days=1)
# Instants outside these bounds never fire: keeps date arithmetic clear of datetime's year 1..9999 range.
MIN_MS = (datetime(2, 1, 1, tzinfo=_UTC) - EPOCH) // ONE_MS
MAX_MS = (datetime(9998, 1, 1, tzinfo=_UTC) - EPOCH) // ONE_MS
# The Gregorian calendar (weekdays included) repeats every 400 years: a rule with no match in that span
# never matches. Only DST gaps can make a rule that matches dates never fire; the horizon bounds that search.
_HORIZON_YEARS = 400
MAX_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # longest length of each month (leap Feb)


@dataclass(frozen=True, slots=True)
class Rule:
    """A cron line or a calendar entry as the sets of values it matches.

    Sorted tuples for the time of day (bisected), sets for the day. ``either_day`` is cron's rule: when
    both day fields are restricted a day matches if either does; otherwise both must match.
    """

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    either_day: bool

    def matches_day(self, day: date) -> bool:
        in_days = day.day in self.days
        in_weekdays = day.isoweekday() % 7 in self.weekdays
        if self.either_day:
            return day.month in self.months and (in_days or in_weekdays)
        return day.month in self.months and in_days and in_weekdays

    def can_fire(self) -> bool:
        """False when no date ever matches (e.g. February 30); weekdays cycle through every date."""
        return self.either_day or any(day <= MAX_DAYS[month] for month in self.months for day in self.days)

    def times_from(self, hour: int, minute: int, second: int) -> Iterator[tuple[int, int, int]]:
        """The matching times of a day in ascending order, from the first at or after hour:minute:second."""
        for h in self.hours[bisect_left(self.hours, hour) :]:
            low_minute = minute if h == hour else 0
            for m in self.minutes[bisect_left(self.minutes, low_minute) :]:
                low_second = second if (h, m) == (hour, minute) else 0
                for s in self.seconds[bisect_left(self.seconds, low_second) :]:
                    yield h, m, s

    def first_fire(self, zone: ZoneInfo, earliest_ms: int, latest_ms: int) -> int | None:
        """The first instant in [earliest_ms, latest_ms] matching on ``zone``'s wall clock, else None.

        Walks days, not minutes: months that do not match are skipped whole, and a matching day yields its
        times directly. Candidates before the local time of ``earliest_ms`` cannot qualify: wall time maps
        to UTC monotonically under fold=0, so they are skipped without being converted.
        """
        earliest_ms = max(earliest_ms, MIN_MS)
        latest_ms = min(latest_ms, MAX_MS)
        if earliest_ms > latest_ms:
            return None
        start = local_time(earliest_ms, zone)
        day = start.date()
        last_day = min(local_time(latest_ms, zone).date(), date(min(day.year + _HORIZON_YEARS, 9998), 12, 31))
        while day <= last_day:
            if day.month not in self.months:
                day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
                continue
            if self.matches_day(day):
                bound = (start.hour, start.minute, start.second) if day == start.date() else (0, 0, 0)
                for h, m, s in self.times_from(*bound):
                    at = instant_ms(zone, day, h, m, s)
                    if at is None or at < earliest_ms:
                        continue
                    return at if at <= latest_ms else None
            day += _ONE_DAY
        return None


def local_time(ms: int, zone: ZoneInfo) -> datetime:
    return (EPOCH + timedelta(milliseconds=ms)).astimezone(zone)


def instant_ms(zone: ZoneInfo, day: date, hour: int, minute: int, second: int) -> int | None:
    """Epoch ms of a wall time's first occurrence (fold=0), or None when a DST gap skips it."""
    wall = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=zone)
    utc = wall.astimezone(_UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != wall.replace(tzinfo=None):
        return None
    return (utc - EPOCH) // ONE_MS


# --- cron -------------------------------------------------------------------------------------------

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1
    )
}
_DAY_NAMES = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
_NO_NAMES: dict[str, int] = {}
# (name, lowest, highest, names); day-of-week admits 7 as Sunday, folded to 0 after parsing.
_CRON_FIELDS = (
    ("minute", 0, 59, _NO_NAMES),
    ("hour", 0, 23, _NO_NAMES),
    ("day-of-month", 1, 31, _NO_NAMES),
    ("month", 1, 12, _MONTH_NAMES),
    ("day-of-week", 0, 7, _DAY_NAMES),
)


def parse_cron(text: str) -> Rule:
    """Parse a 5-field cron line or an @macro (seconds are always 0)."""
    parts = _MACROS.get(text.strip().lower(), text).split()
    if len(parts) != 5:
        raise ScheduleSpecError(
            f"cron {text!r}: expected 5 fields (minute hour day-of-month month "
            f"day-of-week) or an @macro, got {len(parts)} fields"
        )
    minutes, hours, days, months, weekdays = (
        _parse_cron_field(text, part, *spec) for part, spec in zip(parts, _CRON_FIELDS, strict=True)
    )
    rule = Rule(
        seconds=(0,),
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=frozenset(days),
        months=frozenset(months),
        weekdays=frozenset(day % 7 for day in weekdays),
        # Vixie cron: a day field is unrestricted when it contains "*" (so "*/2" counts as *).
        either_day="*" not in parts[2] and "*" not in parts[4],
    )
    if not rule.can_fire():
        raise ScheduleSpecError(
            f"cron {text!r} never fires: day-of-month {parts[2]!r} does not occur in month {parts[3]!r}"
        )
    return rule


def _parse_cron_field(text: str, part: str, name: str, low: int, high: int, names: Mapping[str, int]) -> set[int]:
    """Values of one field: comma list of ``*``, ``v``, ``v-w``, ``*/n``, ``v-w/n`` (v, w numbers or names)."""

    def fail(reason: str) -> ScheduleSpecError:
        return ScheduleSpecError(f"cron {text!r}: {name} field {part!r}: {reason}")

    def value(token: str) -> int:
        if token.isascii() and token.isdigit():
            number = int(token)
            if not low <= number <= high:
                raise fail(f"value {number} is out of range {low}-{high}")
            return number
        if token.upper() in names:
            return names[token.upper()]
        raise fail(f"{token!r} is not a number{' or a name' if names else ''}")

    values: set[int] = set()
    for item in part.split(","):
        body, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise fail(f"step {step_text!r} must be a positive integer")
            step = int(step_text)
        if body == "*":
            first, last = low, high
        elif "-" in body:
            first_text, _, last_text = body.partition("-")
            first, last = value(first_text), value(last_text)
            if first > last:
                raise fail(f"range {body!r} runs backwards")
        elif slash:
            raise fail(f"a step needs a range or '*', as in '*/{step_text}' or 'a-b/{step_text}'")
        else:
            first = last = value(body)
        values.update(range(first, last + 1, step))
    return values
