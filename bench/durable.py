"""Durable-execution benchmark on the real broker (issue 3's four figures).

    python -m bench.durable [--runs 1000] [--latency-runs 200] [--steps 1000] [--sleeps 100] [--traces] [--local]
                            [--hops]

Starts ``kflow dev up`` if needed, creates a fresh topic prefix, runs ``kflow processor`` and
``kflow worker`` as separate processes (as in production), drives them with a ``Client`` from this
process, and prints: (a) runs/s and steps/s for N concurrent 3-step runs, (b) start-to-result latency of
a 1-step run (p50/p99, sequential), (c) one run of S sequential steps: total and last-100/first-100
per-step ratio, (d) ``sleep("1s")`` lateness p50/p99, and the CPU time each process used. Figures only; nothing
is asserted. ``--traces``: every process (and the client) records OpenTelemetry spans into a batch processor that
drops them (``bench.traced``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from bench.hops import Timed, hop_lines, pct
from bench.servers import ServerCpu, process_cpu
from engine import Registry
from streams import DevStack, Settings, Topics, create_topics
from streams.client import Client

ROOT = Path(__file__).resolve().parents[1]


async def throughput(client: Client, runs: int) -> str:
    started = time.perf_counter()
    run_ids = await asyncio.gather(*(client.start("three_steps", i) for i in range(runs)))
    results = await asyncio.gather(*(client.result(r, timeout=600) for r in run_ids))
    took = time.perf_counter() - started
    assert results == list(range(runs))
    return (
        f"(a) {runs} runs x 3 steps, started concurrently: {took:.2f} s -> {runs / took:,.0f} runs/s, "
        f"{3 * runs / took:,.0f} steps/s"
    )


async def materialization_lag(settings: Settings, load: asyncio.Future[str]) -> str:
    """Sample the materializer's lag (events in .history not yet committed to Cassandra) while ``load`` runs."""
    from streams import committed_lag

    topic, group = Topics(settings.topic_prefix).history, f"{settings.topic_prefix}.materializer"

    async def behind() -> int:
        return sum(p.lag for p in await committed_lag(settings.bootstrap, topic, group))

    samples: list[int] = []
    while not load.done():
        samples.append(await behind())
        await asyncio.sleep(0.5)  # each sample opens admin + consumer connections: keep the probe light
    finished = time.perf_counter()
    while (remaining := await behind()) > 0:
        if time.perf_counter() - finished > 120:
            return f"(e) materialization lag: still {remaining} events behind 120 s after the load"
        await asyncio.sleep(0.05)
    catch_up = time.perf_counter() - finished
    return (
        f"(e) materialization lag during (a): max {max(samples, default=0):,} events, median "
        f"{statistics.median(samples) if samples else 0:,.0f}; all in Cassandra {catch_up:.2f} s after the last result"
    )


async def latency(client: Client, runs: int, timed: list[Timed] | None = None) -> str:
    """(b); each run's id and wall-clock send and result times go to ``timed`` (for ``bench.hops``)."""
    samples = []
    for i in range(runs):
        t0, sent = time.perf_counter(), time.time() * 1000
        run_id = await client.start("one_step", i)
        await client.result(run_id, timeout=60)
        samples.append((time.perf_counter() - t0) * 1000)
        if timed is not None:
            timed.append(Timed(run_id, sent, time.time() * 1000))
    return (
        f"(b) 1-step run start->result over {runs} sequential runs: p50 {pct(samples, 0.5):.1f} ms, "
        f"p99 {pct(samples, 0.99):.1f} ms, mean {statistics.mean(samples):.1f} ms"
    )


async def long_run(client: Client, steps: int) -> str:
    t0 = time.perf_counter()
    run_id = await client.start("many_steps", steps)
    await client.result(run_id, timeout=1200)
    took = time.perf_counter() - t0
    done = [e.timestamp for e in await client.get_events(run_id) if type(e).__name__ == "StepCompleted"]
    per_step = [b - a for a, b in itertools.pairwise(done)]
    window = min(100, len(per_step) // 2)
    first, last = statistics.mean(per_step[:window]), statistics.mean(per_step[-window:])
    return (
        f"(c) one run of {steps} sequential steps: {took:.2f} s total, {took / steps * 1000:.2f} ms/step; "
        f"first-{window} {first:.2f} ms/step, last-{window} {last:.2f} ms/step, ratio {last / first:.2f}"
    )


async def lateness(client: Client, runs: int) -> str:
    run_ids = []
    for _ in range(runs):
        run_ids.append(await client.start("sleep_one_second"))
        await asyncio.sleep(0.01)
    await asyncio.gather(*(client.result(r, timeout=120) for r in run_ids))
    late = []
    for run_id in run_ids:
        events = await client.get_events(run_id)
        scheduled = next(e for e in events if type(e).__name__ == "TimerScheduled" and e.kind == "sleep")
        elapsed = next(e for e in events if type(e).__name__ == "TimerElapsed" and e.kind == "sleep")
        late.append(elapsed.timestamp - scheduled.fire_at)
    return (
        f"(d) sleep('1s') lateness over {runs} runs (TimerElapsed recorded - fire_at): p50 {pct(late, 0.5):.0f} ms, "
        f"p99 {pct(late, 0.99):.0f} ms, max {max(late):.0f} ms"
    )


async def scrape(ports: list[int]) -> None:
    """Scrape every process's /metrics once a second (as Prometheus would, more often), to measure the cost."""
    while ports:
        await asyncio.sleep(1.0)
        for port in ports:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:
        body: bytes = answer.read()
        return body


def cpu_seconds(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> float:
    """Wait for a terminated process (killed after ``timeout`` s); the CPU time it used, from its exit status."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
            deadline = float("inf")
        time.sleep(0.05)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--sleeps", type=int, default=100)
    parser.add_argument("--profile", metavar="DIR", help="run every kflow process under cProfile, print the top")
    parser.add_argument(
        "--materializer",
        choices=["separate", "inprocess", "off"],
        default="separate",
        help="history materializer: its own process (default), inside the processor, or none",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve /metrics from every process (PORT, PORT+1, …) and scrape each once a second meanwhile",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="local steps: the processor runs every step's first attempt itself (kflow processor --run-steps)",
    )
    parser.add_argument(
        "--traces",
        action="store_true",
        help="record OpenTelemetry spans in every process and the client, batched and dropped (bench.traced)",
    )
    parser.add_argument("--hops", action="store_true", help="after (b), where its latency went hop by hop (bench.hops)")
    args = parser.parse_args()
    dropped = None
    if args.traces:
        from opentelemetry import trace

        from bench.traced import install

        dropped = install()
    base = Settings.from_env()
    if not os.environ.get("KFLOW_BOOTSTRAP"):
        await asyncio.to_thread(DevStack(base.home).up, log=lambda line: None)
    tag = uuid.uuid4().hex[:8]
    settings = base.replace(topic_prefix=f"bench-{tag}", keyspace=f"bench_{tag}", partitions=2)
    await create_topics(settings.bootstrap, Topics(settings.topic_prefix), settings.partitions)
    env = {
        **os.environ,
        "KFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "KFLOW_PARTITIONS": "2",
        "KFLOW_KEYSPACE": settings.keyspace,
        "PYTHONPATH": str(ROOT),
        "KFLOW_HOME": str(Path("/tmp") / settings.topic_prefix),
    }
    commands = {"processor": ["processor", "-A", "bench.workflows"], "worker": ["worker", "-A", "bench.workflows"]}
    if args.materializer != "inprocess":
        commands["processor"].append("--no-materializer")
    if args.local:
        commands["processor"].append("--run-steps")
    if args.materializer == "separate":
        commands["materializer"] = ["materializer"]
    profiles = {role: Path(args.profile) / f"{role}.prof" for role in commands} if args.profile else {}
    for path in profiles.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    ports = [] if args.metrics_port is None else [args.metrics_port + i for i in range(len(commands))]
    for command, port in zip(commands.values(), ports, strict=False):
        command += ["--metrics-port", str(port)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                *(["-m", "cProfile", "-o", str(profiles[role])] if role in profiles else []),
                "-m",
                "bench.traced" if args.traces else "streams.cli",
                *command,
                "--log-level",
                "ERROR",
            ],
            env=env,
            cwd=ROOT,
        )
        for role, command in commands.items()
    ]
    print(
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"prefix {settings.topic_prefix}, 2 partitions, processes: {', '.join(commands)}, "
        f"materializer {args.materializer}, traces {'recorded and dropped' if args.traces else 'off'}, "
        f"steps {'local (--run-steps)' if args.local else 'on the worker'}"
    )
    scraper = asyncio.ensure_future(scrape(ports))
    try:
        async with Client(settings=settings, registry=Registry.from_module("bench.workflows")) as client:
            await client.result(await client.start("one_step", 0), timeout=120)  # warm up: groups joined
            with ServerCpu(base.home) as servers:
                before = {role: process_cpu(proc.pid) or 0.0 for role, proc in zip(commands, procs, strict=True)}
                load = asyncio.ensure_future(throughput(client, args.runs))
                lag = await materialization_lag(settings, load) if args.materializer != "off" else None
                await asyncio.wait([load])
                burst = {
                    role: (process_cpu(proc.pid) or 0.0) - before[role]
                    for role, proc in zip(commands, procs, strict=True)
                }
            print(await load, flush=True)
            if lag:
                print(lag, flush=True)
            spent = {**burst, **servers.used}
            print(
                f"    CPU s per 1,000 runs during (a){' and the catch-up' if lag else ''}: "
                + ", ".join(f"{name} {cpu * 1000 / args.runs:.2f}" for name, cpu in spent.items())
                + f", total {sum(spent.values()) * 1000 / args.runs:.2f}",
                flush=True,
            )
            timed: list[Timed] = []
            print(await latency(client, args.latency_runs, timed), flush=True)
            if args.hops:
                print("\n".join(await hop_lines(settings, timed)), flush=True)
            for line in (await long_run(client, args.steps), await lateness(client, args.sleeps)):
                print(line, flush=True)
        if dropped is not None:
            getattr(trace.get_tracer_provider(), "force_flush", lambda: None)()
            print(f"client: {dropped.spans} spans recorded (dropped)", flush=True)
    finally:
        scraper.cancel()
        for proc in procs:
            proc.terminate()
        used = {role: cpu_seconds(proc) for role, proc in zip(commands, procs, strict=True)}
    print("CPU seconds (user + system, start to stop): " + ", ".join(f"{r} {s:.2f}" for r, s in used.items()))
    for role, path in profiles.items():
        print(f"--- {role} profile (top 12 by own time) ---")
        pstats.Stats(str(path)).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    asyncio.run(main())
