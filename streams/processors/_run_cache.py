"""The orchestrator's cache of live runs (workflow coroutines suspended at an await), per inbox partition."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from engine.runtime import Run
from streams.processors._metrics import CACHE_EVICTIONS


@dataclass(slots=True)
class RunCache:
    """Live runs (workflow coroutines suspended at an await), least recently used evicted first.

    Eviction is invisible except in speed: an evicted run is rebuilt by replay from its history.
    ``capacity=0`` evicts every run after every input (the always-replay mode of the tests).
    """

    capacity: int
    runs: OrderedDict[str, Run] = field(default_factory=OrderedDict)
    evictions: int = 0

    def get(self, run_id: str) -> Run | None:
        run = self.runs.get(run_id)
        if run is not None:
            self.runs.move_to_end(run_id)
        return run

    def put(self, run: Run) -> None:
        if run.finished or self.capacity == 0:
            self.discard(run.run_id, run)
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
