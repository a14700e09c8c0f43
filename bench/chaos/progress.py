"""Resume times: how long each consumer group took to make progress again after a fault was over.

``ProgressProbe`` samples, once a second, every group's committed offsets and its topic's end offsets. After
the run, ``resume_times`` reads the samples from a fault's recovery moment T (the broker reachable again, the
process restarted, the zombie continued): *first* is when the group's committed offsets first moved after T;
*all* is when every partition that had records waiting at T (at least two past the committed offset: a
transaction's commit marker alone is one) had moved. None: not within the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams import Topics
from streams.kafka import consumer


def groups(prefix: str) -> dict[str, tuple[str, str]]:
    """Role -> (consumer group, the topic it consumes)."""
    topics = Topics(prefix)
    return {
        "orchestrator": (f"{prefix}.orchestrator", topics.inbox),
        "workers": (f"{prefix}.workers", topics.tasks),
        "timers": (f"{prefix}.delay", topics.timers),
        "materializer": (f"{prefix}.materializer", topics.history),
    }


@dataclass(frozen=True)
class Sample:
    """One look at every group: committed and end offsets per (role, partition)."""

    at: float
    committed: dict[tuple[str, int], int]
    ends: dict[tuple[str, int], int]


@dataclass(frozen=True)
class Resume:
    """One group's resume after one fault: seconds from the recovery moment (None: not seen in the window)."""

    first: float | None
    all: float | None
    waiting: int

    def describe(self) -> str:
        """``first 1.2 s, all 3.4 s (3 partitions waiting)``."""

        def s(value: float | None) -> str:
            return "never" if value is None else f"{value:.1f} s"

        return f"first {s(self.first)}, all {s(self.all)} ({self.waiting} waiting)"


class ProgressProbe:
    """Samples the groups of ``prefix`` every ``interval`` s until stopped (broker errors: that sample is skipped)."""

    def __init__(self, bootstrap: str, prefix: str, partitions: int, interval: float = 1.0) -> None:
        self.bootstrap, self.groups, self.interval = bootstrap, groups(prefix), interval
        self.partitions = partitions
        self.samples: list[Sample] = []

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
            reader = consumer(self.bootstrap, request_timeout_ms=5000)
            try:
                async with asyncio.timeout(20):
                    await admin.start()
                    await reader.start()
                    tps = {
                        r: [TopicPartition(t, p) for p in range(self.partitions)] for r, (_, t) in self.groups.items()
                    }
                while True:
                    async with asyncio.timeout(10):
                        self.samples.append(await self._sample(admin, reader, tps))
                    await asyncio.sleep(self.interval)
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker is away: try again with new clients
                await asyncio.sleep(self.interval)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(reader.stop(), 5)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(admin.close(), 5)

    async def _sample(self, admin, reader, tps: dict[str, list[TopicPartition]]) -> Sample:  # type: ignore[no-untyped-def]
        committed: dict[tuple[str, int], int] = {}
        ends: dict[tuple[str, int], int] = {}
        every = [tp for role_tps in tps.values() for tp in role_tps]
        end_offsets = await reader.end_offsets(every)
        for role, (group, _topic) in self.groups.items():
            offsets = await admin.list_consumer_group_offsets(group)
            for tp in tps[role]:
                meta = offsets.get(tp)
                committed[(role, tp.partition)] = meta.offset if meta is not None and meta.offset >= 0 else 0
                ends[(role, tp.partition)] = end_offsets[tp]
        return Sample(time.monotonic(), committed, ends)

    def resume_times(self, recovered: float, until: float) -> dict[str, Resume]:
        """Each group's resume after ``recovered`` (monotonic s), looking at samples up to ``until``."""
        window = [s for s in self.samples if recovered <= s.at <= until]
        found: dict[str, Resume] = {}
        for role in self.groups:
            if not window:
                found[role] = Resume(None, None, 0)
                continue
            first_sample = window[0]
            keys = [k for k in first_sample.committed if k[0] == role]
            start = {k: first_sample.committed[k] for k in keys}
            waiting = [k for k in keys if first_sample.ends[k] - start[k] >= 2]
            first = next((s.at for s in window if any(s.committed.get(k, 0) > start[k] for k in keys)), None)
            moved: dict[tuple[str, int], float] = {}
            for sample in window:
                for k in waiting:
                    if k not in moved and sample.committed.get(k, 0) > start[k]:
                        moved[k] = sample.at
            if not waiting:
                every_moved: float | None = 0.0  # nothing was waiting
            elif len(moved) == len(waiting):
                every_moved = max(moved.values()) - recovered
            else:
                every_moved = None
            found[role] = Resume(None if first is None else first - recovered, every_moved, len(waiting))
        return found
