"""CPU used by the local servers (``kflow dev up``'s Kafka brokers and Cassandra) over a measured window.

with ServerCpu(settings.home) as cpu:
    ...  # the load
print(cpu.line())  # "servers CPU s: kafka-1 12.3, cassandra 20.1"
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from streams import DevStack

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a live process so far (from /proc), None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime: fields 14 and 15 of stat(5)


class ServerCpu:
    """CPU seconds each running server of the dev stack at ``home`` used between enter and exit."""

    def __init__(self, home: Path) -> None:
        self._pids = {s.name: s.pid for s in DevStack(home).status() if s.pid is not None}
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def __enter__(self) -> ServerCpu:
        self._start = {name: cpu for name, pid in self._pids.items() if (cpu := process_cpu(pid)) is not None}
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for name, start in self._start.items():
            end = process_cpu(self._pids[name])
            if end is not None:
                self.used[name] = end - start

    def line(self) -> str:
        """``servers CPU s: kafka-1 12.3, cassandra 20.1`` (empty servers list: no dev stack here)."""
        return "servers CPU s: " + (", ".join(f"{n} {s:.1f}" for n, s in self.used.items()) or "none found")
