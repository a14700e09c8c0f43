"""The dashboard's windows: per-minute buckets of what the UI process followed, kept for the last ``minutes``.

All the windowing is here, in plain Python, so it can be compared with a stream library's (faust's tumbling
windows): each fact is put in the bucket of the minute it happened (its own time, not its arrival), a fact older
than the window is dropped, and buckets past the window are dropped as time moves on. Per bucket:

- runs finished per workflow and status (throughput, failure rate);
- step latencies per step name, as a histogram over ``LATENCY_BOUNDS_MS`` (percentiles interpolated within a bucket,
  as Prometheus' ``histogram_quantile`` does: mergeable, constant memory);
- dead letters;
- each consumer group's lag (the highest sampled in the minute).

Names are bounded: past ``MAX_NAMES`` distinct workflows (steps, groups) a new one counts as ``other``. A fact more
than ``MAX_AHEAD_MS`` ahead of the clock (a host whose clock is wrong) is not counted but ``skipped``: it would move
the window past every fact to come.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

MINUTE_MS: Final = 60_000
LATENCY_BOUNDS_MS: Final = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000)
"""Upper bounds of the latency histogram's buckets (ms); one more bucket holds what is above the last."""
MAX_NAMES: Final = 200
MAX_AHEAD_MS: Final = 60_000
"""How far ahead of the clock a fact may be and still count."""
OTHER: Final = "other"


@dataclass(slots=True)
class _Minute:
    finished: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies: dict[str, list[int]] = field(default_factory=dict)
    dead_letters: int = 0
    lag: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Latency of one step over the window: attempts counted and the 50th, 90th and 99th percentiles (ms)."""

    count: int
    p50: float
    p90: float
    p99: float


class Windows:
    """Per-minute buckets for the last ``minutes`` minutes (not thread-safe: one event loop feeds and reads it);
    ``now_ms`` the clock facts ahead of which are skipped (default: the system's)."""

    def __init__(self, minutes: int = 60, now_ms: Callable[[], int] | None = None) -> None:
        if minutes < 1:
            raise ValueError(f"minutes must be >= 1, got {minutes}")
        self.minutes = minutes
        self.skipped = 0  # facts more than MAX_AHEAD_MS ahead of the clock
        self._now_ms = now_ms or (lambda: time.time_ns() // 1_000_000)
        self._buckets: dict[int, _Minute] = {}
        self._newest = 0
        self._names: dict[str, set[str]] = {"workflow": set(), "step": set(), "group": set()}

    def run_finished(self, workflow: str, status: str, at_ms: int) -> None:
        """A run of ``workflow`` ended with ``status`` at ``at_ms``."""
        if (bucket := self._bucket(at_ms)) is not None:
            bucket.finished[(self._name("workflow", workflow), status)] += 1

    def step_latency(self, step: str, latency_ms: int, at_ms: int) -> None:
        """An attempt of ``step`` took ``latency_ms`` (scheduled to recorded), recorded at ``at_ms``."""
        if (bucket := self._bucket(at_ms)) is not None:
            counts = bucket.latencies.setdefault(self._name("step", step), [0] * (len(LATENCY_BOUNDS_MS) + 1))
            counts[_slot(latency_ms)] += 1

    def dead_letter(self, at_ms: int) -> None:
        """A record was dead-lettered at ``at_ms``."""
        if (bucket := self._bucket(at_ms)) is not None:
            bucket.dead_letters += 1

    def lag(self, group: str, records: int, at_ms: int) -> None:
        """``group`` was ``records`` behind at ``at_ms`` (a minute keeps its highest sample)."""
        if (bucket := self._bucket(at_ms)) is not None:
            name = self._name("group", group)
            bucket.lag[name] = max(records, bucket.lag.get(name, 0))

    def minute_starts(self, now_ms: int) -> list[int]:
        """The start (epoch ms) of each minute of the window ending with ``now_ms``'s, oldest first."""
        last = now_ms // MINUTE_MS
        return [(last - back) * MINUTE_MS for back in range(self.minutes - 1, -1, -1)]

    def finished(self, now_ms: int) -> dict[str, dict[str, list[int]]]:
        """Per workflow, per status: runs finished in each minute of the window (``minute_starts`` order)."""
        out: dict[str, dict[str, list[int]]] = {}
        for index, bucket in self._series(now_ms):
            for (workflow, status), count in bucket.finished.items():
                out.setdefault(workflow, {}).setdefault(status, [0] * self.minutes)[index] += count
        return out

    def latencies(self, now_ms: int) -> dict[str, Percentiles]:
        """Per step: the window's attempts and latency percentiles."""
        merged: dict[str, list[int]] = {}
        for _, bucket in self._series(now_ms):
            for step, counts in bucket.latencies.items():
                total = merged.setdefault(step, [0] * len(counts))
                for slot, count in enumerate(counts):
                    total[slot] += count
        return {
            step: Percentiles(sum(c), quantile(c, 0.5), quantile(c, 0.9), quantile(c, 0.99))
            for step, c in sorted(merged.items())
        }

    def dead_letters(self, now_ms: int) -> list[int]:
        """Dead letters in each minute of the window."""
        out = [0] * self.minutes
        for index, bucket in self._series(now_ms):
            out[index] = bucket.dead_letters
        return out

    def lags(self, now_ms: int) -> dict[str, list[int | None]]:
        """Per group: its highest lag sampled in each minute of the window (None: no sample then)."""
        out: dict[str, list[int | None]] = {}
        for index, bucket in self._series(now_ms):
            for group, records in bucket.lag.items():
                out.setdefault(group, [None] * self.minutes)[index] = records
        return out

    def _series(self, now_ms: int) -> list[tuple[int, _Minute]]:
        first = now_ms // MINUTE_MS - self.minutes + 1
        return [(minute - first, b) for minute, b in self._buckets.items() if 0 <= minute - first < self.minutes]

    def _bucket(self, at_ms: int) -> _Minute | None:
        if at_ms > self._now_ms() + MAX_AHEAD_MS:
            self.skipped += 1
            return None
        minute = at_ms // MINUTE_MS
        if minute > self._newest:
            self._newest = minute
            for old in [m for m in self._buckets if m <= minute - self.minutes]:
                del self._buckets[old]
        if minute <= self._newest - self.minutes:
            return None  # older than the window
        return self._buckets.setdefault(minute, _Minute())

    def _name(self, kind: str, name: str) -> str:
        known = self._names[kind]
        if name in known:
            return name
        if len(known) >= MAX_NAMES:
            return OTHER
        known.add(name)
        return name


def _slot(latency_ms: int) -> int:
    for slot, bound in enumerate(LATENCY_BOUNDS_MS):
        if latency_ms <= bound:
            return slot
    return len(LATENCY_BOUNDS_MS)


def quantile(counts: list[int], q: float) -> float:
    """The ``q`` quantile (0..1) of a histogram over ``LATENCY_BOUNDS_MS``, interpolated linearly within its
    bucket (0 for an empty one; the last bound for what falls above it)."""
    total = sum(counts)
    if total == 0:
        return 0.0
    rank, seen = q * total, 0
    for slot, count in enumerate(counts):
        if count and seen + count >= rank:
            if slot == len(LATENCY_BOUNDS_MS):
                return float(LATENCY_BOUNDS_MS[-1])
            low = 0 if slot == 0 else LATENCY_BOUNDS_MS[slot - 1]
            return low + (LATENCY_BOUNDS_MS[slot] - low) * (rank - seen) / count
        seen += count
    return float(LATENCY_BOUNDS_MS[-1])
