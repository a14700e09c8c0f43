"""Horizontal scaling: 3-step runs/s with 1, 2, 4, … processor + worker pairs on one topic prefix.

    python -m bench.scale [--runs 3000] [--counts 1,2,4] [--partitions 4] [--local]

Starts ``kflow dev up`` if needed (at ``KFLOW_DEV_PORT_OFFSET`` when ``KFLOW_BOOTSTRAP`` is unset); for each count
N, on a fresh prefix with ``--partitions`` partitions: N ``kflow processor --no-materializer`` processes (each with
its own KFLOW_HOME, as on separate hosts) and N ``kflow worker`` processes. Once the orchestrator and worker groups
have N members each and a warm-up run completed on every inbox partition, it starts ``--runs`` 3-step runs at once
from this process (``bench.durable``'s throughput) and measures the CPU time (user + system, /proc) the kflow
processes and the Kafka broker(s) used meanwhile. Prints per N: runs/s, the ratio to the first N, and CPU seconds
per 1,000 runs of kflow and of the broker. ``--local``: processors run every step's first attempt
(``--run-steps``). Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

from bench.durable import ROOT, cpu_seconds, throughput
from bench.servers import ServerCpu, process_cpu
from engine import Registry
from streams import DevStack, Settings, Topics, create_topics, partition_for
from streams.client import Client
from streams.kafka import admin

JOIN_TIMEOUT = 180.0


@dataclass
class Result:
    count: int
    runs_per_s: float
    kflow_cpu: float  # seconds, kflow processes, measured window
    broker_cpu: float | None  # seconds, Kafka JVM(s), measured window; None when no local broker pid is known
    lifetime_cpu: float  # seconds, kflow processes, start to stop


async def group_sizes(settings: Settings, groups: list[str]) -> dict[str, int]:
    """Members of each consumer group that is Stable (0 while it is rebalancing or empty)."""
    client = admin(settings.kafka_target())
    await client.start()
    try:
        sizes = {}
        for group in groups:  # one per request: aiokafka 0.14 misreads the second group of a DescribeGroups v2 answer
            [response] = await client.describe_consumer_groups([group])
            [(_error, _group, state, _type, _protocol, members, *_)] = response.groups
            sizes[group] = len(members) if state == "Stable" else 0
        return sizes
    finally:
        await client.close()


def kflow_cpu(procs: list[subprocess.Popen[bytes]]) -> float:
    """User + system CPU seconds the live processes ``procs`` used so far."""
    return sum(process_cpu(p.pid) or 0.0 for p in procs)


def check_alive(procs: list[subprocess.Popen[bytes]]) -> None:
    dead = [p for p in procs if p.poll() is not None]
    if dead:
        raise RuntimeError(f"a kflow process exited early (pid {dead[0].pid}, status {dead[0].returncode})")


async def wait_joined(
    client: Client, settings: Settings, count: int, procs: list[subprocess.Popen[bytes]]
) -> tuple[float, int]:
    """Until both groups have ``count`` members and a 1-step run completed on every inbox partition after that;
    returns (seconds waited, warm-up runs)."""
    started = time.monotonic()
    prefix = settings.topic_prefix
    groups = [f"{prefix}.orchestrator", f"{prefix}.workers"]
    while True:
        check_alive(procs)
        sizes = await group_sizes(settings, groups)
        if all(sizes.get(g) == count for g in groups):
            break
        if time.monotonic() - started > JOIN_TIMEOUT:
            raise TimeoutError(f"groups not joined after {JOIN_TIMEOUT:.0f} s: {sizes} (want {count} members each)")
        await asyncio.sleep(0.5)
    seen: set[int] = set()
    warmups = 0
    while len(seen) < settings.partitions:
        check_alive(procs)
        if time.monotonic() - started > JOIN_TIMEOUT:
            raise TimeoutError(f"warm-up: completions on partitions {sorted(seen)} only")
        batch = [await client.start("one_step", warmups + i) for i in range(2 * settings.partitions)]
        warmups += len(batch)
        await asyncio.gather(*(client.result(r, timeout=JOIN_TIMEOUT) for r in batch))
        seen |= {partition_for(r.encode(), settings.partitions) for r in batch}
    return time.monotonic() - started, warmups


async def measure(base: Settings, count: int, args: argparse.Namespace, registry: Registry) -> Result:
    tag = uuid.uuid4().hex[:8]
    settings = base.replace(topic_prefix=f"scale-{tag}", keyspace=f"scale_{tag}", partitions=args.partitions)
    await create_topics(settings.bootstrap, Topics(settings.topic_prefix), args.partitions)
    env = {
        **{k: v for k, v in os.environ.items() if k != "KFLOW_METRICS_PORT"},  # N processes: no port to share
        "KFLOW_BOOTSTRAP": settings.bootstrap,
        "KFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "KFLOW_PARTITIONS": str(args.partitions),
        "KFLOW_KEYSPACE": settings.keyspace,
        "PYTHONPATH": str(ROOT),
    }
    quiet = ["-A", "bench.workflows", "--log-level", "ERROR"]
    processor = ["processor", *quiet, "--no-materializer", *(["--run-steps"] if args.local else [])]
    commands = [(processor, f"p{i}") for i in range(count)] + [(["worker", *quiet], f"w{i}") for i in range(count)]
    procs: list[subprocess.Popen[bytes]] = []
    used: list[float] = []
    try:
        for command, host in commands:
            home = {"KFLOW_HOME": f"/tmp/{settings.topic_prefix}-{host}"}
            procs.append(
                subprocess.Popen([sys.executable, "-m", "streams.cli", *command], env={**env, **home}, cwd=ROOT)
            )
        async with Client(settings=settings, registry=registry) as client:
            waited, warmups = await wait_joined(client, settings, count, procs)
            print(f"N={count}: prefix {settings.topic_prefix}, joined in {waited:.1f} s ({warmups} warm-up runs)")
            with ServerCpu(base.home) as servers:
                cpu0, t0 = kflow_cpu(procs), time.perf_counter()
                line = await throughput(client, args.runs)
                took, cpu1 = time.perf_counter() - t0, kflow_cpu(procs)
            check_alive(procs)  # a process that died meanwhile would make the CPU figures wrong
            brokers = [cpu for name, cpu in servers.used.items() if name.startswith("kafka")]
            print(f"N={count}: {line}", flush=True)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            used.append(cpu_seconds(proc) if proc.returncode is None else 0.0)
        for _command, host in commands:
            shutil.rmtree(f"/tmp/{settings.topic_prefix}-{host}", ignore_errors=True)
    return Result(count, args.runs / took, cpu1 - cpu0, sum(brokers) if brokers else None, sum(used))


def table(results: list[Result], runs: int) -> list[str]:
    first = results[0]
    lines = [
        f"{'N':>3}  {'runs/s':>8}  {f'vs N={first.count}':>7}  {'kflow CPU s/1k runs':>19}  "
        f"{'broker CPU s/1k runs':>20}  {'kflow CPU s start-stop':>22}"
    ]
    for r in results:
        broker = "n/a" if r.broker_cpu is None else f"{r.broker_cpu / runs * 1000:.2f}"
        lines.append(
            f"{r.count:>3}  {r.runs_per_s:>8,.0f}  {r.runs_per_s / first.runs_per_s:>7.2f}  "
            f"{r.kflow_cpu / runs * 1000:>19.2f}  {broker:>20}  {r.lifetime_cpu:>22.2f}"
        )
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000, help="3-step runs started at once, per N")
    parser.add_argument("--counts", default="1,2,4", help="processor (and worker) counts, comma-separated")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of each prefix (>= the largest N)")
    parser.add_argument(
        "--local",
        action="store_true",
        help="local steps: processors run every step's first attempt themselves (kflow processor --run-steps)",
    )
    args = parser.parse_args()
    try:
        counts = [int(c) for c in args.counts.split(",")]
    except ValueError:
        parser.error(f"--counts: comma-separated integers, got {args.counts!r}")
    if not counts or min(counts) < 1:
        parser.error("--counts: every count must be >= 1")
    if args.partitions < max(counts):
        parser.error(f"--partitions {args.partitions} < the largest count {max(counts)}: a processor would idle")
    base = Settings.from_env()
    if not os.environ.get("KFLOW_BOOTSTRAP"):  # the local stack, wherever KFLOW_DEV_PORT_OFFSET put it
        stack = DevStack(base.home, port_offset=base.dev_port_offset)
        await asyncio.to_thread(stack.up, log=lambda line: None)
        base = base.replace(bootstrap=stack.bootstrap)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, load {load}; "
        f"broker {base.bootstrap}, {args.partitions} partitions, {args.runs} 3-step runs per N, "
        f"steps {'local (--run-steps)' if args.local else 'on the workers'}",
        flush=True,
    )
    registry = Registry.from_module("bench.workflows")
    results = [await measure(base, count, args, registry) for count in counts]
    print("\n".join(table(results, args.runs)))
    if any(r.broker_cpu is None for r in results):
        print(f"broker CPU n/a: no Kafka node of a kflow dev stack runs in KFLOW_HOME ({base.home})")


if __name__ == "__main__":
    asyncio.run(main())
