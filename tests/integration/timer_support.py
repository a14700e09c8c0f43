"""What the timer processor tests share: timers armed on ``.timers``, a processor running in this process,
and a reader of what reached ``.inbox`` (or ``.dlq``) and when."""

from __future__ import annotations

import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from engine.runtime import CancelTimer, StartTimer, TimerFired
from schemas import RecordCodec
from streams import Settings, Topics
from streams.kafka import consumer, producer
from streams.processors import TimerProcessor
from support import eventually

RECORDS = RecordCodec()
LATENESS_MS: list[int] = []  # fired_at - fire_at of timers armed ahead of time, over the whole session


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def run_id_on(partition: int, partitions: int) -> str:
    """A fresh run id whose records land on ``partition`` (murmur2 of the raw UTF-8 key)."""
    every = list(range(partitions))
    while True:
        run_id = uuid.uuid4().hex
        if DefaultPartitioner()(run_id.encode(), every, every) == partition:
            return run_id


def arm(run_id: str, position: int, fire_at: int, kind: str = "sleep") -> StartTimer:
    return StartTimer(
        run_id=run_id,
        timer_id=f"{kind}:{position}:0",
        position=position,
        kind=kind,
        fire_at=fire_at,
        requested_at=now_ms(),
    )


def cancel(timer: StartTimer) -> CancelTimer:
    return CancelTimer(run_id=timer.run_id, timer_id=timer.timer_id, requested_at=now_ms())


def percentiles(samples: list[int]) -> str:
    if len(samples) < 2:
        return f"n={len(samples)}"
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return f"n={len(samples)} p50={cuts[49]:.0f}ms p99={cuts[98]:.0f}ms max={max(samples)}ms"


@dataclass(frozen=True, slots=True)
class Seen:
    """One record read back, with the wall time it reached the test."""

    key: bytes
    value: bytes
    received_ms: int


class TopicReader:
    """Reads a topic from the beginning (no group), keeping the records whose key is of interest."""

    def __init__(self, settings: Settings, topic: str, keys: set[bytes]) -> None:
        self.keys = keys
        self.seen: list[Seen] = []
        self._consumer = consumer(settings.bootstrap, fetch_max_wait_ms=20)
        self._partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def read_until(self, done: Callable[[list[Seen]], bool], timeout: float = 30.0) -> list[Seen]:
        """Poll until ``done(seen)`` holds; fails after ``timeout`` seconds."""

        async def read_enough() -> bool:
            if done(self.seen):
                return True
            await self._poll()
            return False

        await eventually(
            read_enough,
            timeout=timeout,
            interval=0,
            what=lambda: f"the records expected; read so far: {len(self.seen)} record(s)",
        )
        return self.seen

    async def drain(self) -> list[Seen]:
        """Read up to the current end of every partition (to see duplicates that may follow)."""
        ends = await self._consumer.end_offsets(self._partitions)

        async def at_ends() -> bool:
            if all([await self._consumer.position(tp) >= end for tp, end in ends.items()]):
                return True
            await self._poll()
            return False

        await eventually(at_ends, interval=0, what="the reader to reach the end offsets (draining)")
        return self.seen

    async def _poll(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=100)
        received = now_ms()
        for messages in batches.values():
            self.seen.extend(Seen(m.key, m.value, received) for m in messages if m.key in self.keys)


def fired_records(seen: list[Seen]) -> list[tuple[TimerFired, int]]:
    decoded = [(RECORDS.decode(s.value), s.received_ms) for s in seen]
    return [(record, received) for record, received in decoded if isinstance(record, TimerFired)]


def fired_ids(seen: list[Seen]) -> set[str]:
    return {fired.timer_id for fired, _ in fired_records(seen)}


@asynccontextmanager
async def timers_producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    out = producer(settings.bootstrap)
    await out.start()
    try:
        yield out
    finally:
        await out.stop()


async def send(out: AIOKafkaProducer, settings: Settings, *records: StartTimer | CancelTimer) -> list[int]:
    topic = Topics(settings.topic_prefix).timers
    metas = [await out.send_and_wait(topic, RECORDS.encode(r), key=r.run_id.encode()) for r in records]
    return [meta.offset for meta in metas]


@asynccontextmanager
async def running(settings: Settings, state_dir: Path, head_size: int = 1024) -> AsyncIterator[TimerProcessor]:
    processor = TimerProcessor(settings, state_dir=state_dir, head_size=head_size)
    await processor.start()
    try:
        await eventually(lambda: len(processor.assigned) == settings.partitions, what="partition assignment")
        yield processor
    finally:
        await processor.stop()


def check_fired_once_in_order(armed: list[StartTimer], fired: list[tuple[TimerFired, int]]) -> None:
    """Each armed timer fired exactly once, never early, and per run in due order."""
    counts = Counter((f.run_id, f.timer_id) for f, _ in fired)
    assert all(n == 1 for n in counts.values()), counts
    assert set(counts) == {(t.run_id, t.timer_id) for t in armed}
    by_key = {(t.run_id, t.timer_id): t for t in armed}
    for record, received_ms in fired:
        timer = by_key[(record.run_id, record.timer_id)]
        assert (record.position, record.kind, record.fire_at) == (timer.position, timer.kind, timer.fire_at)
        assert record.fired_at >= timer.fire_at and received_ms >= timer.fire_at
    for run_id in {t.run_id for t in armed}:
        order = [(f.fire_at, f.timer_id) for f, _ in fired if f.run_id == run_id]
        assert order == sorted(order)


def record_lateness(fired: list[tuple[TimerFired, int]], armed_at: int) -> list[int]:
    samples = [f.fired_at - f.fire_at for f, _ in fired if f.fire_at > armed_at]
    LATENESS_MS.extend(samples)
    return samples
