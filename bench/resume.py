"""Resume after kill -9 of a processor under load: how long each inbox partition goes without a completion.

    python -m bench.resume [--rate 100] [--warmup 8] [--after 30] [--restart 0.5]

Starts ``kflow dev up`` if needed, two ``kflow processor`` processes (each with its own KFLOW_HOME, as on two
hosts) and one ``kflow worker`` on a fresh 4-partition prefix, starts 1-step runs at a steady rate from this
process, kills one processor with SIGKILL once both own partitions, and prints, per inbox partition, the longest
time around the kill without a completion of one of its runs (the survivor's partitions: the usual spacing; the
dead one's: until the group gives them to the survivor and it has adopted them). ``--restart S``: both processors
are static members (``--instance-id``) and the killed one is started again S s after the kill, on its KFLOW_HOME, as a
supervisor (systemd ``Restart=always``, a Kubernetes pod) would: its partitions wait for it, not for the session
timeout. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from engine import Registry
from streams import DevStack, Settings, Topics, create_topics
from streams.client import Client
from streams.kafka import partition_for

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4


async def drive(client: Client, rate: float, until: float, done: dict[int, list[float]]) -> None:
    """Start runs at ``rate`` per second until ``until`` (monotonic); record each completion by partition."""
    pending: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        run_id = await client.start("one_step", i)
        await client.result(run_id, timeout=300)
        done.setdefault(partition_for(run_id.encode(), PARTITIONS), []).append(time.monotonic())

    i = 0
    while time.monotonic() < until:
        task = asyncio.ensure_future(one(i))
        pending.add(task)
        task.add_done_callback(pending.discard)
        i += 1
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*pending)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="runs started per second")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds of load before the kill")
    parser.add_argument("--after", type=float, default=30.0, help="seconds of load after the kill")
    parser.add_argument(
        "--restart",
        type=float,
        metavar="S",
        help="processors with --instance-id (static membership); the killed one restarted after S s (a supervisor)",
    )
    args = parser.parse_args()
    base = Settings.from_env()
    if not os.environ.get("KFLOW_BOOTSTRAP"):
        await asyncio.to_thread(DevStack(base.home).up, log=lambda line: None)
    tag = uuid.uuid4().hex[:8]
    settings = base.replace(topic_prefix=f"resume-{tag}", keyspace=f"resume_{tag}", partitions=PARTITIONS)
    await create_topics(settings.bootstrap, Topics(settings.topic_prefix), PARTITIONS)
    env = {
        **os.environ,
        "KFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "KFLOW_PARTITIONS": str(PARTITIONS),
        "KFLOW_KEYSPACE": settings.keyspace,
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "streams.cli"]
    quiet = ["-A", "bench.workflows", "--log-level", "ERROR"]

    def processor(name: str) -> subprocess.Popen[bytes]:
        static = [] if args.restart is None else ["--instance-id", f"processor-{name}"]
        return subprocess.Popen(
            [*command, "processor", *quiet, "--no-materializer", *static],
            env={**env, "KFLOW_HOME": f"/tmp/{settings.topic_prefix}-{name}"},
            cwd=ROOT,
        )

    procs = [processor(name) for name in ("a", "b")]
    procs.append(subprocess.Popen([*command, "worker", *quiet], env=env, cwd=ROOT))
    print(
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, prefix "
        f"{settings.topic_prefix}, {PARTITIONS} partitions, 2 processors + 1 worker, {args.rate:.0f} runs/s"
    )
    done: dict[int, list[float]] = {}
    try:
        async with Client(settings=settings, registry=Registry.from_module("bench.workflows")) as client:
            await client.result(await client.start("one_step", 0), timeout=120)  # groups joined
            start = time.monotonic()
            load = asyncio.ensure_future(drive(client, args.rate, start + args.warmup + args.after, done))
            await asyncio.sleep(args.warmup)
            killed = time.monotonic()
            procs[0].send_signal(signal.SIGKILL)
            if args.restart is not None:
                await asyncio.sleep(args.restart)
                procs.append(processor("a"))
            await load
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    worst = 0.0
    for partition in range(PARTITIONS):
        times = sorted(done.get(partition, []))
        before = [t for t in times if t < killed]
        after = [t for t in times if t >= killed]
        # the outage of a partition: from its last completion before the kill to its first one after the takeover
        window = before[-1:] + after
        gap = max((b - a for a, b in itertools.pairwise(window)), default=float("inf"))
        worst = max(worst, gap)
        print(f"partition {partition}: longest time without a completion around the kill {gap:.2f} s")
    print(f"resume: the slowest partition went {worst:.2f} s without a completion (kill -9 of a processor)")


if __name__ == "__main__":
    asyncio.run(main())
