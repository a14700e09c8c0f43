"""Schedule specifications: when a schedule fires (a cron line, a fixed interval or calendar entries).

Pure: no clock, no I/O. Every instant is epoch milliseconds UTC; cron and calendar rules match the wall
clock of the spec's ``timezone``. Nominal fire times are whole seconds.

DST, on the wall clock of ``timezone``: a local time that does not exist (spring-forward gap) is skipped;
a local time that occurs twice (fall-back) fires once, at its first occurrence (``fold=0``).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from ._cron import EPOCH, MAX_DAYS, MAX_MS, ONE_MS, Rule, parse_cron
from ._durations import Duration, parse_duration
from ._errors import InvalidDurationError, ScheduleSpecError

_T = TypeVar("_T")


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


# --- calendar -----------------------------------------------------------------------------------------

_CALENDAR_FIELDS = (
    ("second", 0, 59, False),
    ("minute", 0, 59, False),
    ("hour", 0, 23, False),
    ("day_of_month", 1, 31, True),
    ("month", 1, 12, True),
    ("day_of_week", 0, 6, True),
)


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
                raise ScheduleSpecError(
                    f"CalendarSpec {name}={number!r}: expected an int in {low}-{high}{' or None' if optional else ''}"
                )
        if self.day_of_month is not None and self.month is not None and self.day_of_month > MAX_DAYS[self.month]:
            raise ScheduleSpecError(f"CalendarSpec day_of_month={self.day_of_month} never occurs in month={self.month}")

    def _rule(self) -> Rule:
        def any_or(value: int | None, low: int, high: int) -> frozenset[int]:
            return frozenset(range(low, high + 1)) if value is None else frozenset((value,))

        return Rule(
            seconds=(self.second,),
            minutes=(self.minute,),
            hours=(self.hour,),
            days=any_or(self.day_of_month, 1, 31),
            months=any_or(self.month, 1, 12),
            weekdays=any_or(self.day_of_week, 0, 6),
            either_day=False,
        )


# --- the spec -----------------------------------------------------------------------------------------

_WIRE_KEYS = frozenset(
    ("cron", "interval_ms", "calendar", "timezone", "start_at", "end_at", "jitter_ms", "catchup_window_ms")
)
DEFAULT_CATCHUP_WINDOW = timedelta(minutes=1)


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
        catchup_window: how late a fire may still be taken (default 1 minute, >= 0). When fires were missed
            (no processor ran, or it stalled), the first of them fires late, and so does each later one whose
            due time is less than this far in the past; older ones are counted as skipped.

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
    catchup_window: Duration = DEFAULT_CATCHUP_WINDOW
    _rules: tuple[Rule, ...] = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _interval_ms: int = field(init=False, repr=False, compare=False)
    _jitter_ms: int = field(init=False, repr=False, compare=False)
    catchup_window_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        given = [name for name in ("cron", "interval", "calendar") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ScheduleSpecError(
                f"ScheduleSpec needs exactly one of cron, interval, calendar; got {', '.join(given) or 'none'}"
            )
        start_at, end_at = _epoch_ms("start_at", self.start_at), _epoch_ms("end_at", self.end_at)
        if start_at is not None and end_at is not None and end_at < start_at:
            raise ScheduleSpecError(f"end_at={end_at} is before start_at={start_at}")
        interval_ms = _duration_ms("interval", self.interval)
        if self.interval is not None and (interval_ms <= 0 or interval_ms % 1000):
            raise ScheduleSpecError(f"interval {self.interval!r} must be a whole number of seconds > 0")
        jitter_ms = _duration_ms("jitter", self.jitter)
        catchup_window_ms = _duration_ms("catchup_window", self.catchup_window)
        rules: tuple[Rule, ...] = ()
        if self.cron is not None:
            if not isinstance(self.cron, str):
                raise ScheduleSpecError(f"cron must be a string, got {self.cron!r}")
            rules = (parse_cron(self.cron),)
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
        object.__setattr__(self, "catchup_window", timedelta(milliseconds=catchup_window_ms))
        object.__setattr__(self, "catchup_window_ms", catchup_window_ms)
        object.__setattr__(self, "_rules", rules)

    def next_fire(self, after_ms: int) -> int | None:
        """The first nominal fire strictly after ``after_ms`` (epoch ms UTC); None when there is none."""
        return self._first_fire(after_ms + 1, MAX_MS)

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
        """A JSON-safe dict: interval and jitter as ms ints (``interval_ms``, ``jitter_ms``), times as ms;
        ``catchup_window_ms`` only when not the default (so processors older than the field read it)."""
        wire: dict[str, object] = {
            "cron": self.cron,
            "interval_ms": None if self.interval is None else self._interval_ms,
            "calendar": None
            if self.calendar is None
            else [{name: getattr(entry, name) for name, *_ in _CALENDAR_FIELDS} for entry in self.calendar],
            "timezone": self.timezone,
            "start_at": self.start_at,
            "end_at": self.end_at,
            "jitter_ms": None if self.jitter is None else self._jitter_ms,
        }
        if self.catchup_window != DEFAULT_CATCHUP_WINDOW:
            wire["catchup_window_ms"] = self.catchup_window_ms
        return wire

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
        catchup_ms = _wire_field(data, "catchup_window_ms", int)
        raw_calendar = _wire_field(data, "calendar", list)
        zone_name = _wire_field(data, "timezone", str)
        return cls(
            cron=_wire_field(data, "cron", str),
            interval=None if interval_ms is None else timedelta(milliseconds=interval_ms),
            calendar=None if raw_calendar is None else tuple(map(_calendar_from_wire, raw_calendar)),
            timezone="UTC" if zone_name is None else zone_name,
            start_at=_wire_field(data, "start_at", int),
            end_at=_wire_field(data, "end_at", int),
            jitter=None if jitter_ms is None else timedelta(milliseconds=jitter_ms),
            catchup_window=DEFAULT_CATCHUP_WINDOW if catchup_ms is None else timedelta(milliseconds=catchup_ms),
        )

    @property
    def max_jitter_ms(self) -> int:
        """The bound of ``jitter_ms`` (exclusive; 0 without jitter)."""
        return self._jitter_ms

    def count_fires(self, start_ms: int, end_ms: int, cap: int) -> int:
        """How many nominal fires t with start_ms <= t < end_ms: exact for intervals (arithmetic), else
        counted one by one up to ``cap`` (a lower bound beyond it)."""
        first = self._first_fire(start_ms, end_ms - 1)
        if first is None:
            return 0
        if self.interval is not None:
            last = end_ms - 1 if self.end_at is None else min(end_ms - 1, self.end_at)
            return (last - first) // self._interval_ms + 1
        count, fire = 1, first
        while count < cap:
            following = self._first_fire(fire + 1, end_ms - 1)
            if following is None:
                break
            count, fire = count + 1, following
        return count

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
        return (value - EPOCH) // ONE_MS
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

    return CalendarSpec(
        second=required("second") if "second" in raw else 0,
        minute=required("minute") if "minute" in raw else 0,
        hour=required("hour") if "hour" in raw else 0,
        day_of_month=_wire_field(raw, "day_of_month", int),
        month=_wire_field(raw, "month", int),
        day_of_week=_wire_field(raw, "day_of_week", int),
    )


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
