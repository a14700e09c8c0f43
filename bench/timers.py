"""What the timer changelog costs: records per timer, and rebuilding an index on a host without it.

    python -m bench.timers [--timers 10000] [--short 1000]

Starts ``kflow dev up`` if needed and creates a fresh topic prefix (2 partitions). Host A (an in-process
timer processor on state dir A) ingests N timers due in an hour, plus S short timers that fire and S
timers that are cancelled; the changelog's records are counted per kind. Then host B (a new processor on an
EMPTY state dir) adopts every partition and rebuilds its indexes from the changelog (timed), and host A
adopts them again with its own, still current, index (no rebuild: the peer). Figures only; nothing is
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from aiokafka import TopicPartition

from engine.runtime import CancelTimer, StartTimer
from schemas import RecordCodec
from streams import DevStack, Settings, Topics, create_topics
from streams.kafka import consumer, producer
from streams.processors import TimerProcessor

RECORDS = RecordCodec()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _until(check: Callable[[], bool], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out")
        await asyncio.sleep(0.01)


async def _adopt(settings: Settings, state_dir: Path) -> tuple[TimerProcessor, float]:
    processor = TimerProcessor(settings, state_dir=state_dir)
    started = time.perf_counter()
    await processor.start()
    await _until(lambda: len(processor.assigned) == settings.partitions)
    return processor, time.perf_counter() - started


async def _send(settings: Settings, records: list[StartTimer | CancelTimer]) -> None:
    out = producer(settings.bootstrap, linger_ms=5)
    await out.start()
    try:
        topic = Topics(settings.topic_prefix).timers
        acks = [await out.send(topic, RECORDS.encode(r), key=r.run_id.encode()) for r in records]
        await asyncio.gather(*acks)
    finally:
        await out.stop()


async def _changelog_records(settings: Settings, topic: str) -> tuple[int, int, int, int]:
    """(arms, tombstones, bytes of arms, bytes of tombstones) on every partition, key + value bytes."""
    reader = consumer(settings.bootstrap, max_poll_records=10_000)
    await reader.start()
    arms = tombstones = arm_bytes = tombstone_bytes = 0
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        for tp in tps:
            while await reader.position(tp) < ends[tp]:
                for message in (await reader.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if message.value is None:
                        tombstones, tombstone_bytes = tombstones + 1, tombstone_bytes + len(message.key or b"")
                    else:
                        arms, arm_bytes = arms + 1, arm_bytes + len(message.key or b"") + len(message.value)
    finally:
        await reader.stop()
    return arms, tombstones, arm_bytes, tombstone_bytes


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timers", type=int, default=10_000, help="long timers armed (and rebuilt)")
    parser.add_argument("--short", type=int, default=1000, help="timers that fire, and timers cancelled")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    base = Settings.from_env()
    if not os.environ.get("KFLOW_BOOTSTRAP"):
        await asyncio.to_thread(DevStack(base.home).up, log=lambda line: None)
    settings = base.replace(topic_prefix=f"bench-timers-{uuid.uuid4().hex[:8]}", partitions=2)
    await create_topics(settings.bootstrap, Topics(settings.topic_prefix), settings.partitions)
    print(
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"prefix {settings.topic_prefix}, 2 partitions, {args.timers:,} long timers, {args.short:,} fired "
        f"and {args.short:,} cancelled"
    )
    with tempfile.TemporaryDirectory() as tmp:
        host_a, host_b = Path(tmp) / "a", Path(tmp) / "b"
        first, _ = await _adopt(settings, host_a)
        now = _now_ms()
        long = [
            StartTimer(
                run_id=uuid.uuid4().hex,
                timer_id="sleep:0:0",
                position=0,
                kind="sleep",
                fire_at=now + 3_600_000 + i,
                requested_at=now,
            )
            for i in range(args.timers)
        ]
        started = time.perf_counter()
        await _send(settings, list(long))
        await _until(lambda: first.stats.pending == args.timers)
        ingest = time.perf_counter() - started
        short = [dataclasses.replace(t, run_id=uuid.uuid4().hex, fire_at=_now_ms() + 1000) for t in long[: args.short]]
        doomed = [dataclasses.replace(t, run_id=uuid.uuid4().hex) for t in long[: args.short]]
        await _send(settings, [*short, *doomed])
        await _send(settings, [CancelTimer(run_id=t.run_id, timer_id=t.timer_id, requested_at=now) for t in doomed])
        await _until(lambda: first.stats.fired == args.short and first.stats.pending == args.timers)
        await first.stop()
        arms, tombstones, arm_bytes, tombstone_bytes = await _changelog_records(settings, first.changelog_topic)
        print(
            f"host A ingested {args.timers:,} timers in {ingest * 1000:,.0f} ms "
            f"({args.timers / ingest:,.0f} timers/s, changelog write + ack before each commit)"
        )
        print(
            f"changelog: {arms:,} arms ({arm_bytes / max(arms, 1):.0f} B key+value each), {tombstones:,} "
            f"tombstones ({tombstone_bytes / max(tombstones, 1):.0f} B key each)"
        )
        print(
            "  per timer: armed then fired = 2 records (arm, tombstone); armed then cancelled = 2; "
            "armed = 1 until it ends; due on arrival = 0"
        )
        second, took = await _adopt(settings, host_b)
        stats = second.stats
        await second.stop()
        print(
            f"host B (empty state dir) rebuilt {stats.restored:,} timers from {arms + tombstones:,} changelog "
            f"records in {stats.restore_seconds * 1000:,.0f} ms; adoption with the group join "
            f"{took * 1000:,.0f} ms"
        )
        again, took_again = await _adopt(settings, host_a)
        print(
            f"peer: host A again, index current (no rebuild, {again.stats.restore_seconds * 1000:.0f} ms "
            f"reading): adoption with the group join {took_again * 1000:,.0f} ms, {again.stats.pending:,} armed"
        )
        await again.stop()


if __name__ == "__main__":
    asyncio.run(main())
