"""A 10,000-iteration loop as a chain of continue-as-new runs runs in bounded memory (issue 5), on the real broker.

The orchestrator, the timer processor and a step worker run in this process, so the test can look at the
orchestrator's per-partition state while the chain runs and sample this process's memory. Bounded memory is
asserted by structure (what ``PartitionLogic`` holds, how many ``Run`` objects and workflow coroutines are
alive) and by the growth of the resident set between iteration ~1,000 and the end, not by wall-clock time.

Measured on the 2-core dev machine: ~270-290 s for the 10,000 iterations (~35 it/s), most of it spent by
``Client.result`` following the chain live (one scan of a completions partition per link, each longer than
the last); the chain alone runs at ~86 it/s (``python -m bench.continue_as_new --follow none``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import sys
import time
import types
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine import Registry, continue_as_new, step, workflow
from engine.runtime import HISTORY_EVENT_TYPES, Run
from streams import Settings, Topics, create_topics
from streams.client import Client
from streams.processors import Orchestrator, StepWorker, TimerProcessor

pytestmark = pytest.mark.integration

ITERATIONS = 10_000
CHECKPOINT = 1_000

# Resident-set growth allowed between iteration ~1,000 and iteration 10,000. Measured on the 2-core dev machine
# (orchestrator + worker + client in this process): +7.3 and +8.5 MiB in two runs with result() following
# live, +4.1 MiB without it.
# tracemalloc on the same chain (bench.continue_as_new --tracemalloc) puts the traced part at +4.5 MiB: the
# client's bounded result cache (10,000 raw RunFinished, ~2.6 MiB) and the orchestrator's O(runs) remainder,
# ``finished`` + ``successors`` (~0.2 KB per run, ~1.8 MiB); the rest is allocator slack and the consumer a
# result() scan opens per link. A leak costs, over those 9,000 runs (tracemalloc on the engine alone): a
# retained Run (suspended coroutine + RunCore + history) ~6.3 KB -> ~55 MiB; a retained finished history
# (4 events) ~1.5 KB -> ~13 MiB on top of the ~8 MiB. 16 MiB is twice the measured growth and fails both;
# the census below (Run objects, coroutines, history events alive) names such a leak exactly.
RSS_GROWTH_LIMIT_MIB = 16.0


@step
async def tick(i: int) -> int:
    """One step per iteration: the realistic loop body (the step result feeds the next iteration)."""
    return i + 1


@workflow
async def long_loop(i: int = 0, stop: int = ITERATIONS) -> int:
    """Iteration ``i`` of the loop; each iteration is a run of its own, with a fresh history."""
    if i == stop:
        return i
    continue_as_new(await tick(i), stop)


@dataclasses.dataclass
class App:
    client: Client
    orchestrator: Orchestrator


@dataclasses.dataclass(frozen=True)
class Sample:
    """The process and the orchestrator's state at one moment of the chain."""

    iteration: int
    seconds: float
    rss_mib: float
    running: int  # histories of runs not yet finished, all partitions
    live: int  # Run objects in the live-run caches, all partitions
    finished: int  # entries in the partitions' ``finished`` dicts
    successors: int  # entries in the partitions' ``successors`` dicts (continued run -> its successor)
    run_objects: int  # engine.Run instances alive anywhere in the process (after a gc; -1: not counted)
    coroutines: int  # long_loop coroutines alive anywhere in the process (after a gc)
    events: int  # history events alive anywhere in the process (after a gc)


@pytest.fixture
async def app(settings: Settings, tmp_path: Path) -> AsyncIterator[App]:
    """Orchestrator, timer processor and a worker in this process, on a topic prefix of their own."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-can")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    registry = Registry.from_module(__name__)
    orchestrator = Orchestrator(own, registry)
    services = (orchestrator, TimerProcessor(own, state_dir=tmp_path / "delay"), StepWorker(own, registry))
    for service in services:
        await service.start()
    try:
        async with Client(settings=own, registry=registry) as client:
            yield App(client, orchestrator)
    finally:
        for service in reversed(services):
            await service.stop()


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _sample(orchestrator: Orchestrator, baseline: int, started: float, census: bool = False) -> Sample:
    parts = list(orchestrator.partitions.values())
    finished = sum(len(p.finished) for p in parts)
    run_objects = coroutines = events = -1
    if census:
        gc.collect()
        objects = gc.get_objects()
        run_objects = sum(issubclass(type(o), Run) for o in objects)  # type(), not isinstance: dead weak proxies
        coroutines = sum(isinstance(o, types.CoroutineType) and o.cr_code.co_name == "long_loop" for o in objects)
        events = sum(isinstance(o, HISTORY_EVENT_TYPES) for o in objects)
        del objects
    return Sample(
        iteration=finished - baseline,
        seconds=time.perf_counter() - started,
        rss_mib=_rss_mib(),
        running=sum(len(p.histories) for p in parts),
        live=sum(len(p.cache.runs) for p in parts),
        finished=finished,
        successors=sum(len(p.successors) for p in parts),
        run_objects=run_objects,
        coroutines=coroutines,
        events=events,
    )


def _remainder_bytes(orchestrator: Orchestrator) -> int:
    """Size of what finished runs leave behind: the ``finished`` and ``successors`` dicts, the run ids and the
    successor ids (a key is one str object in both dicts; the status strings are interned constants)."""
    return sum(
        sys.getsizeof(p.finished)
        + sum(map(sys.getsizeof, p.finished))
        + sys.getsizeof(p.successors)
        + sum(map(sys.getsizeof, p.successors.values()))
        for p in orchestrator.partitions.values()
    )


@pytest.mark.timeout(1200)
async def test_ten_thousand_iterations_via_continue_as_new_run_in_bounded_memory(app: App) -> None:
    client, orchestrator = app.client, app.orchestrator
    assert await client.result(await client.start(long_loop, 0, 1), timeout=60) == 1  # warm-up: groups joined
    baseline = sum(len(p.finished) for p in orchestrator.partitions.values())
    started = time.perf_counter()
    first = await client.start(long_loop, 0, ITERATIONS)
    # Waited on from the start, as a caller of the loop would: result() follows the chain link by link.
    result = asyncio.ensure_future(client.result(first, timeout=1100))
    peak_running = peak_live = 0
    at_checkpoint: Sample | None = None
    chain_done: float | None = None
    while not result.done():
        now = _sample(orchestrator, baseline, started)
        peak_running, peak_live = max(peak_running, now.running), max(peak_live, now.live)
        if at_checkpoint is None and now.iteration >= CHECKPOINT:
            at_checkpoint = _sample(orchestrator, baseline, started, census=True)
        if chain_done is None and now.iteration == ITERATIONS + 1:
            chain_done = now.seconds
        await asyncio.wait({result}, timeout=0.05)
    answer = result.result()
    took = time.perf_counter() - started
    end = _sample(orchestrator, baseline, started, census=True)
    assert at_checkpoint is not None

    print(
        f"\n{ITERATIONS:,} iterations (one step each) as {ITERATIONS + 1:,} runs: {took:.1f} s, "
        f"{ITERATIONS / took:.1f} iterations/s; chain finished at {chain_done or took:.1f} s, result() "
        f"returned {took - (chain_done or took):.2f} s later"
    )
    for label, s in (("at ~1k", at_checkpoint), ("at end", end)):
        print(
            f"{label}: iteration {s.iteration:,} at {s.seconds:.1f} s, RSS {s.rss_mib:.1f} MiB, "
            f"running histories {s.running}, live runs {s.live}, finished entries {s.finished:,}, successors "
            f"{s.successors:,}; alive: {s.run_objects} Run, {s.coroutines} long_loop coroutines, {s.events} events"
        )
    print(
        f"peaks while running: {peak_running} running histories, {peak_live} live runs; finished + successors "
        f"{_remainder_bytes(orchestrator) / 1024:.0f} KiB; RSS growth {end.rss_mib - at_checkpoint.rss_mib:+.1f} "
        f"MiB; replays {sum(p.replays for p in orchestrator.partitions.values())}"
    )

    assert answer == ITERATIONS
    assert end.iteration == ITERATIONS + 1  # every run of the chain finished (and nothing else ran)
    # O(1): the chain has one run in flight at a time, and a finished run's history and Run are dropped.
    assert peak_running <= 1 and peak_live <= 1
    assert end.running == 0 and end.live == 0
    assert end.run_objects == 0 and end.coroutines == 0
    assert end.events <= 10  # measured 0; 10,001 retained histories would be 40,000 events
    # The O(runs) remainder, ~0.2 KB a run: a status per finished run and, per continued run, its successor's
    # id (so a cancel can follow the chain). `kflow compact` forgets finished runs; it is not run here (it
    # finds them in Cassandra, which would need the materializer to catch up on 40,000 events first).
    assert end.finished == baseline + ITERATIONS + 1
    assert end.successors == end.finished - 2  # the warm-up's and the chain's last runs completed
    assert set().union(*(p.finished.values() for p in orchestrator.partitions.values())) == {
        "continued_as_new",
        "completed",
    }
    assert end.rss_mib - at_checkpoint.rss_mib < RSS_GROWTH_LIMIT_MIB
