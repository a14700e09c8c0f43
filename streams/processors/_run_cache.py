"""The orchestrator's cache of live runs (workflow coroutines suspended at an await), per inbox partition."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from engine.runtime import Run
from streams.processors._metrics import CACHE_EVICTIONS

LONG_SLEEP_MS = 60_000
"""A run asleep at least this long is replayed when it wakes rather than kept live meanwhile."""


@dataclass(slots=True)
class RunCache:
    """Live runs (workflow coroutines suspended at an await), least recently used evicted first.

    Eviction is invisible except in speed: an evicted run is rebuilt by replay from its history.
    ``capacity=0`` evicts every run after every input (the always-replay mode of the tests). A run that will sleep
    ``long_sleep_ms`` or more before anything can wake it is not kept (``parked``): a live run costs about 7 KB, a
    replay when it wakes a few microseconds per event — a million runs asleep for an hour need no live coroutines.
    """

    capacity: int
    long_sleep_ms: int = LONG_SLEEP_MS
    runs: OrderedDict[str, Run] = field(default_factory=OrderedDict)
    evictions: int = 0
    parked: int = 0

    def get(self, run_id: str) -> Run | None:
        run = self.runs.get(run_id)
        if run is not None:
            self.runs.move_to_end(run_id)
        return run

    def put(self, run: Run, now_ms: int | None = None) -> None:
        """Keep ``run`` live, as the most recently used (``now_ms``: its activation time, to park a long sleep)."""
        if run.finished or self.capacity == 0:
            self.discard(run.run_id, run)
            return
        if now_ms is not None and (due := run.asleep_until) is not None and due - now_ms >= self.long_sleep_ms:
            self.discard(run.run_id, run)
            self.parked += 1
            return
        self.runs[run.run_id] = run
        self.runs.move_to_end(run.run_id)
        while len(self.runs) > self.capacity:
            _, oldest = self.runs.popitem(last=False)
            oldest.close()
            self.evictions += 1
            CACHE_EVICTIONS.inc()

    def discard(self, run_id: str, run: Run | None = None) -> None:
        cached = self.runs.pop(run_id, None)
        for victim in {id(r): r for r in (cached, run) if r is not None}.values():
            victim.close()

    def clear(self) -> None:
        for run in self.runs.values():
            run.close()
        self.runs.clear()
