"""Times for the ScheduleSpec tests (test_schedule_specs_*.py): ISO strings with offsets <-> epoch ms, and
the next fires of a spec as ISO times on its wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from engine import ScheduleSpec

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
