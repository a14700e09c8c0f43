"""Clocks: the one place time enters kflow. The engine itself only sees ``now_ms`` values."""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

from ._durations import Duration, parse_duration


@runtime_checkable
class Clock(Protocol):
    """Source of the current time in epoch milliseconds."""

    def now_ms(self) -> int:
        """Current time, epoch milliseconds (UTC)."""
        ...


class SystemClock:
    """The wall clock (for hosts; tests use FakeClock)."""

    def now_ms(self) -> int:
        """Current wall-clock time, epoch milliseconds."""
        return time.time_ns() // 1_000_000


class FakeClock:
    """A clock that only moves when told to.

    Args:
        start_ms: initial time, epoch milliseconds.
    """

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        """The current fake time."""
        return self._now

    def advance(self, duration: Duration) -> int:
        """Move forward by ``duration`` (anything ``parse_duration`` accepts); returns the new time."""
        self._now += parse_duration(duration)
        return self._now

    def set(self, now_ms: int) -> None:
        """Jump to ``now_ms`` (must not go backwards).

        Raises:
            ValueError: ``now_ms`` is earlier than the current time.
        """
        if now_ms < self._now:
            raise ValueError(f"FakeClock cannot go backwards ({now_ms} < {self._now})")
        self._now = now_ms
