"""Schedule specifications: when a schedule fires (a cron line, a fixed interval or calendar entries).

Pure: no clock, no I/O. Every instant is epoch milliseconds UTC; cron and calendar rules match the wall
clock of the spec's ``timezone``. Nominal fire times are whole seconds.

DST, on the wall clock of ``timezone``: a local time that does not exist (spring-forward gap) is skipped;
a local time that occurs twice (fall-back) fires once, at its first occurrence (``fold=0``).
"""

from __future__ import annotations

import enum
import hashlib
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TypeVar
from zoneinfo import ZoneInfo

from ._durations import Duration, parse_duration
from ._errors import InvalidDurationError, KflowError

_T = TypeVar("_T")
_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_ONE_MS = timedelta(milliseconds=1)
_ONE_DAY = timedelta(days=1)
# Instants outside these bounds never fire: keeps date arithmetic clear of datetime's year 1..9999 range.
_MIN_MS = (datetime(2, 1, 1, tzinfo=_UTC) - _EPOCH) // _ONE_MS
_MAX_MS = (datetime(9998, 1, 1, tzinfo=_UTC) - _EPOCH) // _ONE_MS
# The Gregorian calendar (weekdays included) repeats every 400 years: a rule with no match in that span
# never matches. Only DST gaps can make a rule that matches dates never fire; the horizon bounds that search.
_HORIZON_YEARS = 400
_MAX_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # longest length of each month (leap Feb)


class OverlapPolicy(str, enum.Enum):
    """What a schedule does when a fire comes due while a run it started is still running.

    The values are the wire strings (``ScheduleCommand.overlap``, ``ScheduleState.overlap``).
    """

    SKIP = "skip"
    """Drop the fire."""
    BUFFER_ONE = "buffer_one"
    """Start it when the running run finishes; at most one fire waits, later ones are dropped."""
    BUFFER_ALL = "buffer_all"
    """Start every fire, one after another, each when the previous run finishes."""
    CANCEL_OTHER = "cancel_other"
    """Cancel the running run, then start."""
    ALLOW_ALL = "allow_all"
    """Start at once, whatever is running."""


class ScheduleSpecError(KflowError, ValueError):
    """A schedule specification is invalid (the message names the field and the value)."""

    __module__ = "engine"
    retryable = False


@dataclass(frozen=True, slots=True)
class _Rule:
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
        return self.either_day or any(day <= _MAX_DAYS[month] for month in self.months for day in self.days)

    def times_from(self, hour: int, minute: int, second: int) -> Iterator[tuple[int, int, int]]:
        """The matching times of a day in ascending order, from the first at or after hour:minute:second."""
        for h in self.hours[bisect_left(self.hours, hour):]:
            low_minute = minute if h == hour else 0
            for m in self.minutes[bisect_left(self.minutes, low_minute):]:
                low_second = second if (h, m) == (hour, minute) else 0
                for s in self.seconds[bisect_left(self.seconds, low_second):]:
                    yield h, m, s

    def first_fire(self, zone: ZoneInfo, earliest_ms: int, latest_ms: int) -> int | None:
        """The first instant in [earliest_ms, latest_ms] matching on ``zone``'s wall clock, else None.

        Walks days, not minutes: months that do not match are skipped whole, and a matching day yields its
        times directly. Candidates before the local time of ``earliest_ms`` cannot qualify: wall time maps
        to UTC monotonically under fold=0, so they are skipped without being converted.
        """
        earliest_ms = max(earliest_ms, _MIN_MS)
        latest_ms = min(latest_ms, _MAX_MS)
        if earliest_ms > latest_ms:
            return None
        start = _local(earliest_ms, zone)
        day = start.date()
        last_day = min(_local(latest_ms, zone).date(), date(min(day.year + _HORIZON_YEARS, 9998), 12, 31))
        while day <= last_day:
            if day.month not in self.months:
                day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
                continue
            if self.matches_day(day):
                bound = (start.hour, start.minute, start.second) if day == start.date() else (0, 0, 0)
                for h, m, s in self.times_from(*bound):
                    at = _instant_ms(zone, day, h, m, s)
                    if at is None or at < earliest_ms:
                        continue
                    return at if at <= latest_ms else None
            day += _ONE_DAY
        return None


def _local(ms: int, zone: ZoneInfo) -> datetime:
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(zone)


def _instant_ms(zone: ZoneInfo, day: date, hour: int, minute: int, second: int) -> int | None:
    """Epoch ms of a wall time's first occurrence (fold=0), or None when a DST gap skips it."""
    wall = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=zone)
    utc = wall.astimezone(_UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != wall.replace(tzinfo=None):
        return None
    return (utc - _EPOCH) // _ONE_MS


# --- cron -------------------------------------------------------------------------------------------

_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_MONTH_NAMES = {name: number for number, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_DAY_NAMES = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
_NO_NAMES: dict[str, int] = {}
# (name, lowest, highest, names); day-of-week admits 7 as Sunday, folded to 0 after parsing.
_CRON_FIELDS = (("minute", 0, 59, _NO_NAMES), ("hour", 0, 23, _NO_NAMES), ("day-of-month", 1, 31, _NO_NAMES),
                ("month", 1, 12, _MONTH_NAMES), ("day-of-week", 0, 7, _DAY_NAMES))


def _parse_cron(text: str) -> _Rule:
    """Parse a 5-field cron line or an @macro (seconds are always 0)."""
    parts = _MACROS.get(text.strip().lower(), text).split()
    if len(parts) != 5:
        raise ScheduleSpecError(f"cron {text!r}: expected 5 fields (minute hour day-of-month month "
                                f"day-of-week) or an @macro, got {len(parts)} fields")
    minutes, hours, days, months, weekdays = (_parse_cron_field(text, part, *spec)
                                              for part, spec in zip(parts, _CRON_FIELDS))
    rule = _Rule(seconds=(0,), minutes=tuple(sorted(minutes)), hours=tuple(sorted(hours)),
                 days=frozenset(days), months=frozenset(months),
                 weekdays=frozenset(day % 7 for day in weekdays),
                 # Vixie cron: a day field is unrestricted when it contains "*" (so "*/2" counts as *).
                 either_day="*" not in parts[2] and "*" not in parts[4])
    if not rule.can_fire():
        raise ScheduleSpecError(f"cron {text!r} never fires: day-of-month {parts[2]!r} does not occur in "
                                f"month {parts[3]!r}")
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


# --- calendar -----------------------------------------------------------------------------------------

_CALENDAR_FIELDS = (("second", 0, 59, False), ("minute", 0, 59, False), ("hour", 0, 23, False),
                    ("day_of_month", 1, 31, True), ("month", 1, 12, True), ("day_of_week", 0, 6, True))


@dataclass(frozen=True, slots=True, kw_only=True)
class CalendarSpec:
    """One calendar entry: fires at hour:minute:second on every day matching all the day fields.

    Unlike cron, ``day_of_month`` and ``day_of_week`` must both match when both are set
    (``day_of_month=13, day_of_week=5`` is Friday the 13th). ``None`` means any.

    Raises:
        ScheduleSpecError: a field out of range or not an int, or a date that never occurs (Feb 30).
    """

    second: int = 0
    minute: int = 0
    hour: int = 0
    day_of_month: int | None = None  # 1-31
    month: int | None = None  # 1-12
    day_of_week: int | None = None  # 0-6, 0 = Sunday (as in cron)

    def __post_init__(self) -> None:
        for name, low, high, optional in _CALENDAR_FIELDS:
            number = getattr(self, name)
            if optional and number is None:
                continue
            if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
                raise ScheduleSpecError(f"CalendarSpec {name}={number!r}: expected an int in {low}-{high}"
                                        f"{' or None' if optional else ''}")
        if self.day_of_month is not None and self.month is not None \
                and self.day_of_month > _MAX_DAYS[self.month]:
            raise ScheduleSpecError(f"CalendarSpec day_of_month={self.day_of_month} never occurs in "
                                    f"month={self.month}")

    def _rule(self) -> _Rule:
        def any_or(value: int | None, low: int, high: int) -> frozenset[int]:
            return frozenset(range(low, high + 1)) if value is None else frozenset((value,))

        return _Rule(seconds=(self.second,), minutes=(self.minute,), hours=(self.hour,),
                     days=any_or(self.day_of_month, 1, 31), months=any_or(self.month, 1, 12),
                     weekdays=any_or(self.day_of_week, 0, 6), either_day=False)


# --- the spec -----------------------------------------------------------------------------------------

_WIRE_KEYS = frozenset(("cron", "interval_ms", "calendar", "timezone", "start_at", "end_at", "jitter_ms"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleSpec:
    """When a schedule fires: exactly one of ``cron``, ``interval`` or ``calendar``.

    Fields are normalised at construction, so specs compare equal by meaning and ``from_wire(to_wire())``
    returns an equal spec: ``interval``/``jitter`` become timedeltas, ``start_at``/``end_at`` epoch ms,
    ``calendar`` a tuple.

    Attributes:
        cron: 5-field cron line (minute hour day-of-month month day-of-week) or an @macro.
        interval: fires at anchor + k * interval; the anchor is ``start_at`` (rounded up to a whole second)
            or the Unix epoch, so an hourly interval fires on the hour. Whole seconds, > 0.
        calendar: entries whose fires are united.
        timezone: IANA name; the wall clock cron and calendar match (intervals ignore it).
        start_at: epoch ms UTC (or an aware datetime): no fire before it.
        end_at: epoch ms UTC (or an aware datetime): no fire after it (inclusive).
        jitter: maximum delay added to each fire (see ``jitter_ms``), >= 0.

    Raises:
        ScheduleSpecError: on any invalid field, including a cron line that never fires.
    """

    cron: str | None = None
    interval: Duration | None = None
    calendar: tuple[CalendarSpec, ...] | None = None
    timezone: str = "UTC"
    start_at: int | None = None
    end_at: int | None = None
    jitter: Duration | None = None
    _rules: tuple[_Rule, ...] = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _interval_ms: int = field(init=False, repr=False, compare=False)
    _jitter_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        given = [name for name in ("cron", "interval", "calendar") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ScheduleSpecError(f"ScheduleSpec needs exactly one of cron, interval, calendar; got "
                                    f"{', '.join(given) or 'none'}")
        start_at, end_at = _epoch_ms("start_at", self.start_at), _epoch_ms("end_at", self.end_at)
        if start_at is not None and end_at is not None and end_at < start_at:
            raise ScheduleSpecError(f"end_at={end_at} is before start_at={start_at}")
        interval_ms = _duration_ms("interval", self.interval)
        if self.interval is not None and (interval_ms <= 0 or interval_ms % 1000):
            raise ScheduleSpecError(f"interval {self.interval!r} must be a whole number of seconds > 0")
        jitter_ms = _duration_ms("jitter", self.jitter)
        rules: tuple[_Rule, ...] = ()
        if self.cron is not None:
            if not isinstance(self.cron, str):
                raise ScheduleSpecError(f"cron must be a string, got {self.cron!r}")
            rules = (_parse_cron(self.cron),)
        if self.calendar is not None:
            entries = _calendar_entries(self.calendar)
            object.__setattr__(self, "calendar", entries)
            rules = tuple(entry._rule() for entry in entries)
        object.__setattr__(self, "_zone", _zone(self.timezone))
        object.__setattr__(self, "start_at", start_at)
        object.__setattr__(self, "end_at", end_at)
        object.__setattr__(self, "interval", None if self.interval is None else timedelta(milliseconds=interval_ms))
        object.__setattr__(self, "jitter", None if self.jitter is None else timedelta(milliseconds=jitter_ms))
        object.__setattr__(self, "_interval_ms", interval_ms)
        object.__setattr__(self, "_jitter_ms", jitter_ms)
        object.__setattr__(self, "_rules", rules)

    def next_fire(self, after_ms: int) -> int | None:
        """The first nominal fire strictly after ``after_ms`` (epoch ms UTC); None when there is none."""
        return self._first_fire(after_ms + 1, _MAX_MS)

    def fires_between(self, start_ms: int, end_ms: int, limit: int) -> list[int]:
        """Nominal fires t with start_ms <= t < end_ms, ascending (a backfill's range).

        Raises:
            ScheduleSpecError: when there are more than ``limit`` fires (nothing is returned then).
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ScheduleSpecError(f"limit must be an int >= 0, got {limit!r}")
        fires: list[int] = []
        fire = self._first_fire(start_ms, end_ms - 1)
        while fire is not None:
            if len(fires) >= limit:
                raise ScheduleSpecError(f"schedule has more than {limit} fires in [{start_ms}, {end_ms})")
            fires.append(fire)
            fire = self._first_fire(fire + 1, end_ms - 1)
        return fires

    def jitter_ms(self, key: str, nominal_ms: int) -> int:
        """The delay in [0, jitter) to add to the fire at ``nominal_ms``; 0 without jitter.

        Invariant: derived from sha256(f"{key}@{nominal_ms}") only, so a restarted scheduler computes the
        same due time for the same fire (key is e.g. the schedule id).
        """
        if self._jitter_ms == 0:
            return 0
        digest = hashlib.sha256(f"{key}@{nominal_ms}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % self._jitter_ms

    def to_wire(self) -> dict[str, object]:
        """A JSON-safe dict: interval and jitter as ms ints (``interval_ms``, ``jitter_ms``), times as ms."""
        return {
            "cron": self.cron,
            "interval_ms": None if self.interval is None else self._interval_ms,
            "calendar": None if self.calendar is None else
            [{name: getattr(entry, name) for name, *_ in _CALENDAR_FIELDS} for entry in self.calendar],
            "timezone": self.timezone,
            "start_at": self.start_at,
            "end_at": self.end_at,
            "jitter_ms": None if self.jitter is None else self._jitter_ms,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, object]) -> ScheduleSpec:
        """Rebuild a spec from ``to_wire`` output; missing keys take their defaults.

        Raises:
            ScheduleSpecError: unknown keys, wrong types, or an invalid spec.
        """
        if not isinstance(data, Mapping):
            raise ScheduleSpecError(f"schedule spec must be a mapping, got {data!r}")
        _reject_unknown_keys("schedule spec", data, _WIRE_KEYS)
        interval_ms, jitter_ms = _wire_field(data, "interval_ms", int), _wire_field(data, "jitter_ms", int)
        raw_calendar = _wire_field(data, "calendar", list)
        zone_name = _wire_field(data, "timezone", str)
        return cls(cron=_wire_field(data, "cron", str),
                   interval=None if interval_ms is None else timedelta(milliseconds=interval_ms),
                   calendar=None if raw_calendar is None else tuple(map(_calendar_from_wire, raw_calendar)),
                   timezone="UTC" if zone_name is None else zone_name,
                   start_at=_wire_field(data, "start_at", int), end_at=_wire_field(data, "end_at", int),
                   jitter=None if jitter_ms is None else timedelta(milliseconds=jitter_ms))

    def _first_fire(self, earliest_ms: int, latest_ms: int) -> int | None:
        """The first fire in [earliest_ms, latest_ms], clipped to [start_at, end_at]."""
        if self.start_at is not None:
            earliest_ms = max(earliest_ms, self.start_at)
        if self.end_at is not None:
            latest_ms = min(latest_ms, self.end_at)
        if earliest_ms > latest_ms:
            return None
        if self.interval is not None:
            anchor = 0 if self.start_at is None else -(-self.start_at // 1000) * 1000
            fire = anchor + -(-(earliest_ms - anchor) // self._interval_ms) * self._interval_ms
            return fire if fire <= latest_ms else None
        fires = (rule.first_fire(self._zone, earliest_ms, latest_ms) for rule in self._rules)
        return min((fire for fire in fires if fire is not None), default=None)


def _zone(name: object) -> ZoneInfo:
    if not isinstance(name, str):
        raise ScheduleSpecError(f"timezone must be an IANA name string, got {name!r}")
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found, malformed key, a directory such as "America"
        raise ScheduleSpecError(f"timezone {name!r} is not a known IANA time zone") from None


def _epoch_ms(name: str, value: object) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ScheduleSpecError(f"{name}={value!r} is a naive datetime: give it a tzinfo")
        return (value - _EPOCH) // _ONE_MS
    raise ScheduleSpecError(f"{name} must be epoch milliseconds (int) or an aware datetime, got {value!r}")


def _duration_ms(name: str, value: Duration | None) -> int:
    if value is None:
        return 0
    try:
        return parse_duration(value)
    except InvalidDurationError as exc:
        raise ScheduleSpecError(f"{name}: {exc}") from None


def _calendar_entries(value: object) -> tuple[CalendarSpec, ...]:
    if not isinstance(value, (tuple, list)) or not value:
        raise ScheduleSpecError(f"calendar must be a non-empty tuple or list of CalendarSpec, got {value!r}")
    for entry in value:
        if not isinstance(entry, CalendarSpec):
            raise ScheduleSpecError(f"calendar entry {entry!r} is not a CalendarSpec")
    return tuple(value)


def _calendar_from_wire(raw: object) -> CalendarSpec:
    if not isinstance(raw, Mapping):
        raise ScheduleSpecError(f"calendar entry must be a mapping, got {raw!r}")
    _reject_unknown_keys("calendar entry", raw, frozenset(name for name, *_ in _CALENDAR_FIELDS))

    def required(key: str) -> int:
        number = _wire_field(raw, key, int)
        if number is None:
            raise ScheduleSpecError(f"calendar entry field {key!r} must be an int, got None")
        return number

    return CalendarSpec(second=required("second") if "second" in raw else 0,
                        minute=required("minute") if "minute" in raw else 0,
                        hour=required("hour") if "hour" in raw else 0,
                        day_of_month=_wire_field(raw, "day_of_month", int), month=_wire_field(raw, "month", int),
                        day_of_week=_wire_field(raw, "day_of_week", int))


def _reject_unknown_keys(what: str, data: Mapping[str, object], known: frozenset[str]) -> None:
    unknown = sorted(repr(key) for key in data if key not in known)
    if unknown:
        raise ScheduleSpecError(f"{what} has unknown keys {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def _wire_field(data: Mapping[str, object], key: str, kind: type[_T]) -> _T | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ScheduleSpecError(f"schedule wire field {key!r} must be {kind.__name__} or null, got {value!r}")
    return value
