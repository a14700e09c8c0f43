"""A million runs asleep: start rate, the processor's memory, adoption by a new host, timer lateness after it.

    python -m bench.sleepers [--runs 1000000] [--partitions 4] [--fire 2000] [--fire-sleep 30] [--no-same-home]
                             [--static]

Starts ``kflow dev up`` if needed, creates a fresh topic prefix and runs ONE ``kflow processor --no-materializer``
(its own KFLOW_HOME; ``sleeper`` has no step, so no worker), then prints: (1) the rate at which Kafka acknowledged N
starts of ``sleeper(3600)`` sent from this process (``Client.start``, concurrently in batches) and the time until
every one is asleep (``kflow_timers_pending`` on the processor's /metrics), with the processor's RSS (VmRSS, VmHWM)
and CPU idle and with them all asleep; (2) F more runs sleeping ``--fire-sleep`` s are started, then the processor is
killed with SIGKILL and a new one starts on an EMPTY KFLOW_HOME (another host: its timer indexes rebuilt from the
``.timer-index`` changelog, its runs from the state and history topics): the time from its spawn to /readyz answering
200 (the orchestrator has adopted every inbox partition), to the last inbox partition adopted and the last timer
partition assigned (their log lines), and to the first of the F runs finished; its RSS; the lateness of the F runs
(``RunFinished.finished_at`` - started_at - the sleep: a run's sleep is due ``seconds`` after its start); (3) with
``--same-home`` (default) the same adoption figures after a second SIGKILL and a restart on that KFLOW_HOME (indexes
kept). Adoption after a SIGKILL includes the group's wait for the dead member's session to expire (10 s); the
processor's own restore times are in its log lines. Timers due before the new host has adopted them are late by the
rest of the adoption. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from aiokafka import TopicPartition

from bench.servers import process_cpu
from engine import Registry
from engine.runtime import RunFinished
from streams import DevStack, Settings, Topics, create_topics
from streams.client import Client
from streams.kafka import read_partition

ROOT = Path(__file__).resolve().parents[1]
ADOPTED = re.compile(r"^partition (\d+) adopted: (\d+) running .*\((\d+) state records\), (\d+) events .* in ([\d.]+)s")
REBUILT = re.compile(r"^timer partition (\d+): index rebuilt .*: (\d+) timer\(s\) restored from (\d+) record\(s\) in")
ASSIGNED = re.compile(r"^timer partition (\d+) assigned: (\d+) timer\(s\) armed")


@dataclass
class Processor:
    """One ``kflow processor`` subprocess: its metrics port, KFLOW_HOME, JSON log and spawn time (epoch s)."""

    proc: subprocess.Popen[bytes]
    port: int
    home: Path
    log: Path
    spawned: float
    lines: list[dict[str, object]] = field(default_factory=list)
    read: int = 0  # bytes of the log read so far

    def poll_log(self) -> None:
        """Read the log lines completed since the last call (the processor logs JSON objects, one a line)."""
        with self.log.open("rb") as log:
            log.seek(self.read)
            while (line := log.readline()).endswith(b"\n"):
                self.read += len(line)
                with contextlib.suppress(ValueError):
                    self.lines.append(json.loads(line))

    def logged(self, pattern: re.Pattern[str]) -> dict[int, tuple[float, re.Match[str]]]:
        """First log line per partition matching ``pattern``: (seconds after the spawn, the match)."""
        found: dict[int, tuple[float, re.Match[str]]] = {}
        for line in self.lines:
            if (match := pattern.match(str(line.get("message", "")))) and int(match[1]) not in found:
                at = datetime.fromisoformat(str(line["time"])).timestamp() - self.spawned
                found[int(match[1])] = (at, match)
        return found

    def vm(self) -> dict[str, int]:
        """The ``Vm*`` figures of /proc/<pid>/status (VmRSS, VmHWM: the peak RSS, …), in bytes."""
        lines = Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
        return {k: int(v.split()[0]) * 1024 for k, _, v in (x.partition(":") for x in lines) if k.startswith("Vm")}

    def memory(self) -> str:
        """VmRSS and VmHWM, and the CPU seconds used so far (/proc/<pid>/stat)."""
        vm, cpu = self.vm(), process_cpu(self.proc.pid) or 0.0
        return f"RSS {vm['VmRSS'] / 2**20:,.0f} MiB (peak {vm['VmHWM'] / 2**20:,.0f} MiB), CPU {cpu:,.1f} s"

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the processor exited ({self.proc.returncode}); its log: {self.log}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def spawn(env: dict[str, str], home: Path, name: str) -> Processor:
    """Start ``kflow processor -A bench.workflows --no-materializer`` with KFLOW_HOME ``home``, logging JSON at INFO."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    log = home.with_name(f"{home.name}-{name}.log")
    command = [sys.executable, "-m", "streams.cli", "processor", "-A", "bench.workflows", "--no-materializer"]
    command += ["--metrics-port", str(port), "--log-level", "INFO", "--log-format", "json"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env={**env, "KFLOW_HOME": str(home)}, cwd=ROOT, stdout=out, stderr=out)
    return Processor(proc, port, home, log, time.time())


def fetch(port: int, path: str) -> bytes:
    """GET ``path`` on the processor's metrics port; OSError when it does not answer 200."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        return bytes(answer.read())


def metrics(port: int) -> dict[str, float]:
    """The unlabelled samples of the processor's /metrics (empty while it does not answer)."""
    try:
        text = fetch(port, "/metrics").decode()
    except OSError:
        return {}
    samples = (line.split() for line in text.splitlines() if line and not line.startswith("#") and "{" not in line)
    return {parts[0]: float(parts[1]) for parts in samples if len(parts) == 2}


def ready(port: int) -> bool:
    """Whether /readyz answers 200 (503 and no answer: not ready)."""
    try:
        return bool(fetch(port, "/readyz"))
    except OSError:
        return False


async def until_ready(processor: Processor, timeout: float = 3600) -> float:
    """Seconds from the spawn until /readyz answers 200."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(ready, processor.port):
        processor.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"processor not ready after {timeout:.0f} s; its log: {processor.log}")
        await asyncio.sleep(0.1)
    return time.time() - processor.spawned


async def until_asleep(processor: Processor, count: int, since: float) -> float:
    """Seconds from ``since`` (monotonic) until the timer processor holds ``count`` timers; progress every minute."""
    said = time.monotonic()
    while (pending := (await asyncio.to_thread(metrics, processor.port)).get("kflow_timers_pending", 0)) < count:
        processor.check()
        if time.monotonic() - said > 60:
            said = time.monotonic()
            print(f"  … {pending:,.0f} of {count:,} asleep after {said - since:,.0f} s", flush=True)
        await asyncio.sleep(min(2.0, 0.1 + (time.monotonic() - since) / 100))  # a scrape counts every SQLite index
    return time.monotonic() - since


async def start_runs(client: Client, count: int, seconds: float, batch: int) -> list[str]:
    """Start ``count`` runs of ``sleeper(seconds)``, ``batch`` at a time concurrently (each waits for Kafka's ack)."""
    run_ids: list[str] = []
    for first in range(0, count, batch):
        size = min(batch, count - first)
        run_ids += await asyncio.gather(*(client.start("sleeper", seconds) for _ in range(size)))
    return run_ids


async def adoption(processor: Processor, partitions: int, label: str) -> None:
    """Wait until the processor is ready and has logged every inbox and timer partition adopted; print the times."""
    ready_at = await until_ready(processor)
    while True:
        processor.poll_log()
        adopted, assigned = processor.logged(ADOPTED), processor.logged(ASSIGNED)
        if len(adopted) >= partitions and len(assigned) >= partitions:
            break
        processor.check()
        await asyncio.sleep(0.1)
    rebuilt = processor.logged(REBUILT)
    running = sum(int(m[2]) for _, m in adopted.values())
    states, events = (sum(int(m[i]) for _, m in adopted.values()) for i in (3, 4))
    print(
        f"{label}: /readyz 200 at +{ready_at:.2f} s; last inbox partition adopted at "
        f"+{max(at for at, _ in adopted.values()):.2f} s ({running:,} running runs from {states:,} state records "
        f"and {events:,} history events; "
        f"restores of {', '.join(f'{float(m[5]):.2f}' for _, (_, m) in sorted(adopted.items()))} s); "
        f"last timer partition assigned at +{max(at for at, _ in assigned.values()):.2f} s "
        f"({sum(int(m[2]) for _, m in assigned.values()):,} timers armed",
        end="",
    )
    if rebuilt:
        timers, records = sum(int(m[2]) for _, m in rebuilt.values()), sum(int(m[3]) for _, m in rebuilt.values())
        print(f"; {len(rebuilt)} indexes rebuilt: {timers:,} timers from {records:,} changelog records)")
    else:
        print("; no index rebuilt)")
    print(f"    once adopted: {processor.memory()}", flush=True)


async def finished(settings: Settings, client: Client, run_ids: set[str]) -> list[RunFinished]:
    """The ``RunFinished`` of ``run_ids`` on the completions topic."""
    found = []
    topic = Topics(settings.topic_prefix).completions
    for number in range(settings.partitions):
        tp = TopicPartition(topic, number)
        async for message in read_partition(settings.kafka_target(), tp, None):
            record = client.records.decode(message.value)
            if isinstance(record, RunFinished) and record.run_id in run_ids:
                found.append(record)
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs asleep for --sleep seconds")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--fire", type=int, default=2000, help="runs whose sleep comes due after the restart")
    parser.add_argument("--sleep", type=float, default=3600.0, help="seconds the --runs sleep")
    parser.add_argument("--fire-sleep", type=float, default=30.0, help="seconds the --fire runs sleep")
    parser.add_argument("--batch", type=int, default=10_000, help="starts sent concurrently")
    parser.add_argument(
        "--same-home",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="finally, kill the new processor too and restart it on its own KFLOW_HOME (indexes kept)",
    )
    parser.add_argument(
        "--static",
        action="store_true",
        help="every processor with --instance-id sleepers (static membership): the replacement host takes the "
        "partitions over at once instead of after the dead one's 10 s session timeout",
    )
    args = parser.parse_args()
    base = Settings.from_env()
    if not os.environ.get("KFLOW_BOOTSTRAP"):
        await asyncio.to_thread(DevStack(base.home).up, log=lambda line: None)
    tag = uuid.uuid4().hex[:8]
    settings = base.replace(topic_prefix=f"sleepers-{tag}", keyspace=f"sleepers_{tag}", partitions=args.partitions)
    await create_topics(settings.bootstrap, Topics(settings.topic_prefix), settings.partitions)
    env = {
        **os.environ,
        "KFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "KFLOW_PARTITIONS": str(args.partitions),
        "KFLOW_KEYSPACE": settings.keyspace,
        "PYTHONPATH": str(ROOT),
        **({"KFLOW_INSTANCE_ID": "sleepers"} if args.static else {}),
    }
    homes = [Path("/tmp") / f"{settings.topic_prefix}-{host}" for host in ("a", "b")]
    print(
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, prefix "
        f"{settings.topic_prefix}, {args.partitions} partitions, one processor (no materializer, no worker), "
        f"{args.runs:,} runs asleep {args.sleep:,.0f} s, {args.fire:,} asleep {args.fire_sleep:,.0f} s",
        flush=True,
    )
    processors: list[Processor] = []
    try:
        first = spawn(env, homes[0], "first")
        processors.append(first)
        await until_ready(first)
        idle = first.vm()["VmRSS"]
        print(f"idle processor, ready: {first.memory()}", flush=True)
        async with Client(settings=settings, registry=Registry.from_module("bench.workflows")) as client:
            began = time.monotonic()
            await start_runs(client, args.runs, args.sleep, args.batch)
            sent = time.monotonic() - began
            print(
                f"(1) {args.runs:,} starts acknowledged by Kafka in {sent:,.1f} s: {args.runs / sent:,.0f} starts/s "
                f"(Client.start, {args.batch:,} at a time)",
                flush=True,
            )
            asleep = await until_asleep(first, args.runs, began)
            print(
                f"    all {args.runs:,} asleep (timers armed) {asleep:,.1f} s after the first start: "
                f"{args.runs / asleep:,.0f} runs/s through the orchestrator and the timer processor",
                flush=True,
            )
            print(
                f"    processor with {args.runs:,} asleep: {first.memory()}; "
                f"{(first.vm()['VmRSS'] - idle) / max(args.runs, 1):,.0f} B of RSS per run asleep",
                flush=True,
            )
            fire_ids = await start_runs(client, args.fire, args.fire_sleep, args.batch)
            await until_asleep(first, args.runs + args.fire, time.monotonic())
            first.kill()
            print(f"(2) {args.fire:,} more runs asleep {args.fire_sleep:,.0f} s; processor killed (SIGKILL)")
            second = spawn(env, homes[1], "empty-home")
            processors.append(second)
            await adoption(second, args.partitions, "    new host, EMPTY KFLOW_HOME")
            await asyncio.gather(*(client.result(r, timeout=args.fire_sleep + 3600) for r in fire_ids))
            ends = await finished(settings, client, set(fire_ids))
            late = sorted(r.finished_at - r.started_at - args.fire_sleep * 1000 for r in ends)
            due = [r.started_at + args.fire_sleep * 1000 for r in ends]
            first_done = min(r.finished_at for r in ends) / 1000 - second.spawned
            print(
                f"    first of the {len(ends):,} short runs finished +{first_done:.2f} s after the spawn "
                f"(due from +{min(due) / 1000 - second.spawned:.2f} s to +{max(due) / 1000 - second.spawned:.2f} s)",
                flush=True,
            )
            if len(late) > 1:
                cuts = statistics.quantiles(late, n=100, method="inclusive")
                print(
                    f"    lateness of the {len(late):,} short runs (finished_at - started_at - sleep): p50 "
                    f"{cuts[49]:,.0f} ms, p99 {cuts[98]:,.0f} ms, max {late[-1]:,.0f} ms",
                    flush=True,
                )
            print(f"    new host after the short runs finished: {second.memory()}", flush=True)
            if args.same_home:
                second.kill()
                third = spawn(env, homes[1], "same-home")
                processors.append(third)
                await adoption(third, args.partitions, "(3) restart on the SAME KFLOW_HOME")
    finally:
        for processor in processors:
            if processor.proc.poll() is None:
                processor.proc.terminate()
                try:
                    processor.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    processor.kill()
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)
        print(f"logs: {', '.join(str(p.log) for p in processors)}")


if __name__ == "__main__":
    asyncio.run(main())
