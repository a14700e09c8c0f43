"""``client.get_events`` cost: Cassandra plus the unmaterialized tail vs a scan of the run's partition.

    python -m bench.run_queries [--runs 3000] [--queries 50]

Starts ``kflow dev up`` if needed, runs N 3-step runs to completion through an in-process orchestrator,
worker and history materializer on a fresh topic prefix and keyspace, waits for the materializer, then
times ``get_events`` of randomly chosen runs with ``Client(history="cassandra")`` (the default) and with
``Client(history="kafka")`` (the peer: the previous implementation, a scan of the whole partition), in
this process. Prints latencies, records scanned and the ratio. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import random
import statistics
import time
import uuid

from engine import Registry
from streams import DevStack, Settings, Topics, create_topics
from streams.client import Client, HistorySource
from streams.processors import HistoryMaterializer, Orchestrator, StepWorker


async def timed_reads(settings: Settings, source: HistorySource, run_ids: list[str]) -> tuple[list[float], int]:
    """Milliseconds per ``get_events`` and records scanned in all, after one warm-up read."""
    async with Client(settings=settings, history=source) as client:
        await client.get_events(run_ids[0])
        took, scanned = [], 0
        for run_id in run_ids:
            started = time.perf_counter()
            events = await client.get_events(run_id)
            took.append((time.perf_counter() - started) * 1000)
            assert events and client.history.last_read is not None
            scanned += client.history.last_read.scanned
    return took, scanned


def summary(took: list[float]) -> str:
    ordered = sorted(took)
    return f"p50 {statistics.median(ordered):.1f} ms, p90 {ordered[int(len(ordered) * 0.9)]:.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # aiokafka logs KIP-890 retries as warnings
    base = Settings.from_env()
    if not os.environ.get("KFLOW_BOOTSTRAP"):
        await asyncio.to_thread(DevStack(base.home).up, log=lambda line: None)
    tag = uuid.uuid4().hex[:8]
    settings = base.replace(topic_prefix=f"bench-queries-{tag}", keyspace=f"bench_queries_{tag}", partitions=2)
    await create_topics(settings.bootstrap, Topics(settings.topic_prefix), settings.partitions)
    registry = Registry.from_module("bench.workflows")
    print(
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"prefix {settings.topic_prefix}, 2 partitions, {args.runs} finished 3-step runs"
    )
    orchestrator = Orchestrator(settings, registry)
    worker = StepWorker(settings, registry, concurrency=16)
    materializer = HistoryMaterializer(settings)
    for service in (orchestrator, worker, materializer):
        await service.start()
    async with Client(settings=settings, registry=registry) as client:
        run_ids = await asyncio.gather(*(client.start("three_steps", i) for i in range(args.runs)))
        await asyncio.gather(*(client.result(r, timeout=600) for r in run_ids))
    while sum((await materializer.lag()).values()) > 0:
        await asyncio.sleep(0.2)
    for service in (orchestrator, worker):
        await service.stop()
    await asyncio.sleep(1)  # the materializer commits what it wrote
    await materializer.stop()
    chosen = random.Random(7).sample(run_ids, min(args.queries, len(run_ids)))
    stored, stored_scanned = await timed_reads(settings, "cassandra", chosen)
    scanned, scan_scanned = await timed_reads(settings, "kafka", chosen)
    print(
        f"get_events, Cassandra + tail: {summary(stored)}; {stored_scanned / len(chosen):,.0f} topic records "
        f"visited per read"
    )
    print(
        f"peer, whole-partition scan:   {summary(scanned)}; {scan_scanned / len(chosen):,.0f} topic records "
        f"visited per read"
    )
    print(f"ratio scan / Cassandra (p50): {statistics.median(scanned) / statistics.median(stored):.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
