"""Schedule fire lateness on the real broker: how long after its nominal time a fire's run starts.

    python -m bench.schedules [--fires 30] [--schedules 5]

Starts ``kflow dev up`` if needed and runs an orchestrator, timer processor and worker in this process on a
fresh topic prefix; creates N schedules firing every second (no jitter, overlap allow_all), waits for the
fires, then reads each run's ``WorkflowStarted`` timestamp from the history: lateness = started - nominal
(the nominal time is the whole second before it: a 1 s interval fires on the second). Prints p50/p99/max.
Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from engine import Registry, ScheduleSpec
from engine.runtime import WorkflowStarted
from streams import DevStack, Settings, Topics, create_topics
from streams.client import Client
from streams.processors import Orchestrator, StepWorker, TimerProcessor


def pct(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fires", type=int, default=30, help="fires to wait for, per schedule")
    parser.add_argument("--schedules", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    base = Settings.from_env()
    if not os.environ.get("KFLOW_BOOTSTRAP"):
        await asyncio.to_thread(DevStack(base.home).up, log=lambda line: None)
    settings = base.replace(topic_prefix=f"bench-sched-{uuid.uuid4().hex[:8]}", partitions=2)
    await create_topics(settings.bootstrap, Topics(settings.topic_prefix), settings.partitions)
    registry = Registry.from_module("bench.workflows")
    print(
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"prefix {settings.topic_prefix}, 2 partitions, {args.schedules} schedules x {args.fires} fires, every 1 s"
    )
    with tempfile.TemporaryDirectory() as state:
        services: list[Orchestrator | TimerProcessor | StepWorker] = [
            Orchestrator(settings, registry),
            TimerProcessor(settings, state_dir=Path(state)),
            StepWorker(settings, registry, concurrency=8),
        ]
        for service in services:
            await service.start()
        try:
            async with Client(settings=settings, registry=registry) as client:
                ids = [f"tick-{i}" for i in range(args.schedules)]
                for i, schedule_id in enumerate(ids):
                    await client.schedules.create(
                        schedule_id, "one_step", ScheduleSpec(interval="1s"), i, overlap="allow_all", timeout=60
                    )
                deadline = time.monotonic() + args.fires + 60
                states = []
                while time.monotonic() < deadline:
                    states = [await client.schedules.get(s) for s in ids]
                    if all(s is not None and s.fires >= args.fires for s in states):
                        break
                    await asyncio.sleep(0.5)
                for schedule_id in ids:
                    await client.schedules.delete(schedule_id, timeout=60)
                run_ids = [r for s in states if s is not None for r in s.recent_runs]
                lateness = []
                for run_id in run_ids:
                    started = next(e for e in await client.get_events(run_id) if isinstance(e, WorkflowStarted))
                    lateness.append(started.timestamp % 1000)
                skipped = sum(s.skipped for s in states if s is not None)
        finally:
            for service in reversed(services):
                await service.stop()
    print(
        f"fire lateness (run started - nominal) over the last {len(lateness)} fires: p50 {pct(lateness, 0.5)} ms, "
        f"p99 {pct(lateness, 0.99)} ms, max {max(lateness)} ms, mean {statistics.fmean(lateness):.1f} ms; "
        f"fires counted as missed: {skipped}"
    )


if __name__ == "__main__":
    asyncio.run(main())
