"""Partition adoption time: restore from the state topic's checkpoint vs reading the whole history.

    python -m bench.restore [--runs 5000] [--running 50] [--long-lived]

Starts ``kflow dev up`` if needed, runs N 3-step runs to completion (plus a few left waiting on a hook)
through an in-process orchestrator and worker on a fresh topic prefix, then measures, in this process:
(1) a new orchestrator adopting every partition (state topic + history from its checkpoint), and
(2) the previous design, the peer: reading and applying every history partition from the beginning.
Prints both times, the records read and the ratio. Figures only; nothing is asserted.

``--long-lived`` starts the waiting runs *before* the N others, so they pin the restore checkpoint at the
start of the history (a run that lives for days while thousands come and go), and compares adoption with run
snapshots (``RunSnapshot`` on the state topic, the default) against the same workload with snapshots off.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import time
import uuid
from typing import cast

from aiokafka import TopicPartition

from engine import Registry
from engine.runtime import HISTORY_EVENT_TYPES, HistoryEvent
from streams import DevStack, Settings, Topics, create_topics
from streams.client import Client
from streams.kafka import read_partition
from streams.processors import SNAPSHOT_AFTER_RECORDS, Orchestrator, PartitionLogic, StepWorker


async def adopt(settings: Settings, registry: Registry) -> tuple[float, Orchestrator]:
    orchestrator = Orchestrator(settings, registry)
    started = time.perf_counter()
    await orchestrator.start()
    while len(orchestrator.partitions) < settings.partitions:
        await asyncio.sleep(0.005)
    return time.perf_counter() - started, orchestrator


async def full_read(settings: Settings, registry: Registry, probe: Orchestrator) -> tuple[float, int]:
    """The peer: every history partition read and applied from offset 0 (what adoption did before)."""
    started, read = time.perf_counter(), 0
    for number in range(settings.partitions):
        logic = PartitionLogic(registry, probe.records, probe.topics.inbox, number)
        async for message in read_partition(settings.bootstrap, TopicPartition(probe.topics.history, number), None):
            read += 1
            event = probe.records.decode(message.value)
            if isinstance(event, HISTORY_EVENT_TYPES):
                logic.restore(cast(HistoryEvent, event), message.offset)
    return time.perf_counter() - started, read


async def workload(settings: Settings, registry: Registry, args: argparse.Namespace, snapshot_after: int) -> None:
    """The runs of the benchmark, through an in-process orchestrator (writing snapshots after
    ``snapshot_after`` records) and worker."""
    await create_topics(settings.bootstrap, Topics(settings.topic_prefix), settings.partitions)
    # Snapshots of runs running for a second (60 s in production): this workload lasts well under a minute.
    orchestrator = Orchestrator(settings, registry, snapshot_after=snapshot_after, snapshot_min_age_ms=1000)
    await orchestrator.start()
    while len(orchestrator.partitions) < settings.partitions:
        await asyncio.sleep(0.005)
    worker = StepWorker(settings, registry, concurrency=16)
    await worker.start()
    async with Client(settings=settings, registry=registry) as client:
        if args.long_lived:
            for i in range(args.running):
                await client.start("waits_for_hook", i)
        # With --long-lived the others come and go in waves of 100, each over in well under a second, as short
        # runs do beside a long one; otherwise all at once.
        wave = 100 if args.long_lived else args.runs
        for first in range(0, args.runs, wave):
            ids = await asyncio.gather(*(client.start("three_steps", i) for i in range(first, first + wave)))
            await asyncio.gather(*(client.result(r, timeout=600) for r in ids))
        if not args.long_lived:
            for i in range(args.running):
                await client.start("waits_for_hook", i)
        # past a checkpoint interval, the next transaction of each partition writes a checkpoint (an idle
        # partition keeps its last one: up to one interval of history is read again)
        await asyncio.sleep(3)
        tail = await asyncio.gather(*(client.start("three_steps", -i) for i in range(1, 11)))
        await asyncio.gather(*(client.result(r, timeout=60) for r in tail))
    await worker.stop()
    await orchestrator.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--running", type=int, default=50, help="runs left waiting on a hook")
    parser.add_argument("--long-lived", action="store_true", help="the waiting runs start first (see above)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # aiokafka logs KIP-890 retries as warnings
    base = Settings.from_env()
    if not os.environ.get("KFLOW_BOOTSTRAP"):
        await asyncio.to_thread(DevStack(base.home).up, log=lambda line: None)
    registry = Registry.from_module("bench.workflows")
    settings = base.replace(topic_prefix=f"bench-restore-{uuid.uuid4().hex[:8]}", partitions=2)
    print(
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"prefix {settings.topic_prefix}, 2 partitions, {args.runs} finished runs, {args.running} waiting"
        f"{' (started first)' if args.long_lived else ''}"
    )
    await workload(settings, registry, args, SNAPSHOT_AFTER_RECORDS)
    took, restored = await adopt(settings, registry)
    stats = restored.stats
    await restored.stop()
    print(
        f"adoption with the state topic: {stats.restore_seconds * 1000:,.0f} ms reading ({stats.history_read:,} "
        f"history records read, {stats.restored_events:,} applied); {took * 1000:,.0f} ms with the group join"
    )
    if args.long_lived:
        plain = settings.replace(topic_prefix=f"{settings.topic_prefix}-nosnap")
        await workload(plain, registry, args, 10**15)
        took_plain, without = await adopt(plain, registry)
        unsnapped = without.stats
        await without.stop()
        print(
            f"same workload without run snapshots: {unsnapped.restore_seconds * 1000:,.0f} ms reading "
            f"({unsnapped.history_read:,} history records read, {unsnapped.restored_events:,} applied); "
            f"{took_plain * 1000:,.0f} ms with the group join"
        )
        print(
            f"ratio without / with snapshots: {unsnapped.history_read / max(1, stats.history_read):.1f}x history "
            f"records read, {took_plain / took:.1f}x adoption time (partitions are adopted concurrently: the "
            "reading times above add up the partitions)"
        )
        return
    peer, read = await full_read(settings, registry, restored)
    print(f"peer, whole history from offset 0: {peer * 1000:,.0f} ms ({read:,} history records read)")
    print(f"ratio whole-history / checkpoint: {peer / stats.restore_seconds:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
