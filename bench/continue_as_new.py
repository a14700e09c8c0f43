"""Continue-as-new loop benchmark on the real broker (issue 5): iterations/s and memory at checkpoints.

    python -m bench.continue_as_new [--iterations 10000] [--every 1000] [--bare] [--follow live|late|none]
                                    [--late-timeout 120] [--tracemalloc]

Starts ``kflow dev up`` if needed and uses a fresh topic prefix. Unlike ``bench.durable`` the orchestrator,
the timer processor and a step worker run in this process, so the orchestrator's per-partition state can be
read and this process's memory sampled. One run of ``loop`` (a step per iteration; ``--bare``: no step) calls
``continue_as_new(i + 1)`` until ``i == --iterations``. Printed at every checkpoint: iterations done, their
rate over the window, RSS (and traced memory with ``--tracemalloc``, which about halves the rate), running
histories, live runs and ``finished`` entries. ``--follow`` says how the client waits for the result: from
the start (live), once the chain has finished (late, given up after ``--late-timeout`` s), or not at all.
Figures only; nothing is asserted.
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
import tracemalloc
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from engine import Registry, continue_as_new, step, workflow
from streams import DevStack, Settings, Topics, create_topics
from streams.client import Client
from streams.processors import Orchestrator, StepWorker, TimerProcessor


@step
async def tick(i: int) -> int:
    return i + 1


@workflow
async def loop(i: int = 0, stop: int = 10) -> int:
    if i == stop:
        return i
    continue_as_new(await tick(i), stop)


@workflow
async def bare_loop(i: int = 0, stop: int = 10) -> int:
    if i == stop:
        return i
    continue_as_new(i + 1, stop)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclasses.dataclass
class Probe:
    """Reads the chain's progress and the memory figures off the in-process orchestrator."""

    orchestrator: Orchestrator
    baseline: int = 0

    def finished(self) -> int:
        return sum(len(p.finished) for p in self.orchestrator.partitions.values())

    def done(self) -> int:
        return self.finished() - self.baseline

    def line(self, started: float, window: tuple[float, int]) -> str:
        parts = list(self.orchestrator.partitions.values())
        now, done = time.perf_counter(), self.done()
        rate = (done - window[1]) / max(1e-9, now - window[0])
        traced = f", traced {tracemalloc.get_traced_memory()[0] / 2**20:6.1f} MiB" if tracemalloc.is_tracing() else ""
        return (
            f"{done:>7,} runs finished  {now - started:7.1f} s  {rate:6.1f} it/s  RSS {rss_mib():6.1f} MiB{traced}"
            f"  running {sum(len(p.histories) for p in parts)}  live {sum(len(p.cache.runs) for p in parts)}"
            f"  finished entries {self.finished():,}"
        )


async def follow(
    client: Client,
    probe: Probe,
    first: str,
    total_runs: int,
    mode: str,
    late_timeout: float,
    started: float,
    every: int,
) -> tuple[object, str, float]:
    """Wait for the chain, printing a line per checkpoint; returns the result, how it was obtained and when
    the chain's last run finished (perf_counter)."""
    live = asyncio.ensure_future(client.result(first, timeout=None)) if mode == "live" else None
    window, next_mark, snapshot = (started, 0), every, None
    while probe.done() < total_runs:
        if probe.done() >= next_mark:
            print(probe.line(started, window), flush=True)
            window, next_mark = (time.perf_counter(), probe.done()), next_mark + every
            if snapshot is None and tracemalloc.is_tracing():
                snapshot = tracemalloc.take_snapshot()
        await asyncio.sleep(0.05)
    chain_done = time.perf_counter()
    print(probe.line(started, window), flush=True)
    if snapshot is not None:
        print("traced growth since the first checkpoint, by file (top 8):")
        for stat in tracemalloc.take_snapshot().compare_to(snapshot, "filename")[:8]:
            print(f"  {stat.size_diff / 1024:+9.0f} KiB  {stat.count_diff:+8,} blocks  {stat.traceback[0].filename}")
    if live is not None:
        result = await live
        return (
            result,
            f"client.result (live, awaited from the start) returned "
            f"{time.perf_counter() - chain_done:.2f} s after the chain",
            chain_done,
        )
    if mode == "late":
        t0 = time.perf_counter()
        try:
            result = await client.result(first, timeout=late_timeout)
        except TimeoutError:
            return None, f"client.result called after the chain did NOT return within {late_timeout:.0f} s", chain_done
        return result, f"client.result called after the chain took {time.perf_counter() - t0:.2f} s", chain_done
    return None, "client.result not called", chain_done


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1_000, help="checkpoint interval (runs finished)")
    parser.add_argument("--bare", action="store_true", help="no step in the loop body")
    parser.add_argument("--follow", choices=["live", "late", "none"], default="live")
    parser.add_argument("--late-timeout", type=float, default=120.0)
    parser.add_argument("--tracemalloc", action="store_true", help="trace allocations (slows everything ~2x)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # aiokafka warns on every CONCURRENT_TRANSACTIONS retry
    base = Settings.from_env()
    if not os.environ.get("KFLOW_BOOTSTRAP"):
        await asyncio.to_thread(DevStack(base.home).up, log=lambda line: None)
    tag = uuid.uuid4().hex[:8]
    settings = base.replace(topic_prefix=f"bench-can-{tag}", partitions=2)
    await create_topics(settings.bootstrap, Topics(settings.topic_prefix), settings.partitions)
    registry = Registry.from_module(__name__)
    orchestrator = Orchestrator(settings, registry)
    state_dir = tempfile.TemporaryDirectory(prefix="bench-can-")
    services = (orchestrator, TimerProcessor(settings, state_dir=Path(state_dir.name)), StepWorker(settings, registry))
    workflow_fn = bare_loop if args.bare else loop
    print(
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, prefix "
        f"{settings.topic_prefix}, 2 partitions, orchestrator + delay + worker + client in one process; "
        f"{args.iterations:,} iterations, {'no step' if args.bare else 'one step'} each, follow {args.follow}"
        f"{', tracemalloc on' if args.tracemalloc else ''}"
    )
    for service in services:
        await service.start()
    try:
        async with Client(settings=settings, registry=registry) as client:
            await client.result(await client.start(workflow_fn, 0, 1), timeout=120)  # warm up: groups joined
            probe = Probe(orchestrator)
            probe.baseline = probe.finished()
            if args.tracemalloc:
                tracemalloc.start()
            started = time.perf_counter()
            first = await client.start(workflow_fn, 0, args.iterations)
            result, how, chain_done = await follow(
                client, probe, first, args.iterations + 1, args.follow, args.late_timeout, started, args.every
            )
            took = chain_done - started
            print(
                f"{args.iterations:,} iterations in {took:.1f} s: {args.iterations / took:.1f} iterations/s; "
                f"result {result!r}; {how}"
            )
    finally:
        for service in reversed(services):
            await service.stop()
        await delete_topics(settings)
        state_dir.cleanup()


async def delete_topics(settings: Settings) -> None:
    """Drop the run's topics: 10,000 runs leave ~50,000 records behind."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if n.startswith(settings.topic_prefix + ".")]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
