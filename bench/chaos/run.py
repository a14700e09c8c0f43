"""One chaos run, start to end: servers, topics, processes, warm-up, load with faults, drain, checker, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from bench.chaos.checker import Report, check
from bench.chaos.cluster import Fleet, PrivateStack, SharedStack, kflow, process_env
from bench.chaos.faults import FaultRecord, Injector, Timings
from bench.chaos.progress import ProgressProbe, Resume
from bench.chaos.workload import Workload, WorkloadResult
from storage import CassandraConnection, CassandraTarget
from streams import DevStack, Settings


@dataclass
class Options:
    """What one chaos run does (``python -m bench.chaos --help``)."""

    runs: int = 300
    links: int = 2
    duration: float = 240.0
    faults: list[str] = field(default_factory=list)
    processors: int = 3
    workers: int = 3
    partitions: int = 4
    private: bool = True
    brokers: int = 3
    private_cassandra: bool = True
    port_offset: int = 1000
    drain: float = 300.0
    settle: float = 15.0
    folder: Path | None = None
    keep: bool = False
    log_level: str = "WARNING"
    timings: Timings = field(default_factory=Timings)


@dataclass
class Outcome:
    """Everything a chaos run found, for printing."""

    options: Options
    prefix: str = ""
    folder: Path | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    faults: list[FaultRecord] = field(default_factory=list)
    resumes: list[dict[str, dict[str, Resume]]] = field(default_factory=list)
    workload: WorkloadResult | None = None
    load_seconds: float = 0.0
    report: Report | None = None
    exits: dict[str, int | None] = field(default_factory=dict)
    log_lines: dict[str, dict[str, int]] = field(default_factory=dict)
    unexplained: list[str] = field(default_factory=list)
    origin: float = 0.0

    @property
    def ok(self) -> bool:
        """No violation and no lost chain."""
        return self.report is not None and self.report.ok and self.workload is not None and not self.workload.lost


async def chaos(options: Options, say: Callable[[str], None]) -> Outcome:
    """Run the whole chaos scenario; always stops what it started (and drops its topics unless ``keep``)."""
    tag = uuid.uuid4().hex[:8]
    folder = options.folder or Path("/tmp") / f"kflow-chaos-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    outcome = Outcome(options, prefix=f"chaos-{tag}", folder=folder)
    base = Settings.from_env()
    stack: SharedStack | PrivateStack
    if options.private:
        stack = PrivateStack(
            folder / "stack", options.port_offset, options.brokers, cassandra=options.private_cassandra, say=say
        )
    else:
        stack = SharedStack(base.bootstrap, base.cassandra)
    fleet: Fleet | None = None
    settings = base
    try:
        started = time.monotonic()
        if isinstance(stack, PrivateStack):
            await asyncio.to_thread(stack.up)
            say(f"private stack up in {time.monotonic() - started:.0f} s: kafka {stack.bootstrap}, {stack.folder}")
        else:
            await asyncio.to_thread(DevStack(base.home).up, log=lambda line: None)
        settings = base.replace(
            bootstrap=stack.bootstrap,
            cassandra=stack.cassandra or base.cassandra,
            topic_prefix=outcome.prefix,
            keyspace=f"chaos_{tag}",
            partitions=options.partitions,
        )
        env = process_env(
            settings.bootstrap, settings.cassandra, settings.keyspace, settings.topic_prefix, options.partitions, folder
        )
        done = kflow(["topics", "create"], env, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"kflow topics create failed: {done.stdout}{done.stderr}")
        fleet = Fleet(folder, env, options.log_level)
        for i in range(options.processors):
            fleet.add("processor", i + 1)
        for i in range(options.workers):
            fleet.add("worker", i + 1)
        fleet.start_all()
        injector = Injector(fleet, stack, settings.topic_prefix, options.timings, say)
        faults = []
        for kind in options.faults:
            reason = injector.supported(kind)
            if reason is None:
                faults.append(kind)
            else:
                outcome.skipped[kind] = reason
        say(
            f"chaos {outcome.prefix}: {options.runs} chains x {options.links + 1} runs over {options.duration:.0f} s, "
            f"{options.processors} processors, {options.workers} workers, {options.partitions} partitions, "
            f"faults {', '.join(faults) or 'none'}; logs in {folder}"
        )
        warm = await Workload(settings, 1, 0, 0.0, say, name="warm").run(180)
        if warm.lost:
            raise RuntimeError(f"warm-up chain did not finish in 180 s; see the logs in {folder}")
        say("warm-up chain done: processes joined")
        await _load(outcome, settings, faults, injector, say)
        outcome.workload.chains.update(warm.chains)  # type: ignore[union-attr]
        roots = list(outcome.workload.chains)  # type: ignore[union-attr]
        say(f"checking {len(roots)} chains (waiting for the materializer first)")
        outcome.report = await check(settings, folder, roots)
        outcome.unexplained = _unexplained(outcome)
    finally:
        if fleet is not None:
            outcome.exits = await asyncio.to_thread(fleet.stop_all)
            outcome.log_lines = {p.name: _scan(p.log) for p in fleet.processes}
        if not options.keep:
            with contextlib.suppress(Exception):
                await _drop(settings)
        if isinstance(stack, PrivateStack):
            await asyncio.to_thread(stack.down)
            if not options.keep:
                shutil.rmtree(stack.folder, ignore_errors=True)
    return outcome


async def _load(
    outcome: Outcome, settings: Settings, faults: list[str], injector: Injector, say: Callable[[str], None]
) -> None:
    options = outcome.options
    probe = ProgressProbe(settings.bootstrap, settings.topic_prefix, settings.partitions)
    probing = asyncio.create_task(probe.run(), name="chaos-probe")
    workload = Workload(settings, options.runs, options.links, options.duration, say)
    origin = outcome.origin = injector.origin = time.monotonic()
    driving = asyncio.create_task(workload.run(options.drain), name="chaos-driver")
    workload.keep_going(bool(faults))
    try:
        ready = origin
        for i, kind in enumerate(faults):
            planned = max(origin + options.duration * i / len(faults) + options.settle / 2, ready)
            await asyncio.sleep(max(0.0, planned - time.monotonic()))
            fault = await injector.apply(kind)
            ready = (fault.recovered or time.monotonic()) + options.settle  # time to measure the resume
        await asyncio.sleep(max(0.0, ready - time.monotonic()))
        workload.keep_going(False)
        outcome.workload = await driving
    finally:
        driving.cancel()
        await asyncio.sleep(2 * probe.interval)  # one more sample after the last progress
        probing.cancel()
        await asyncio.gather(driving, probing, return_exceptions=True)
    outcome.load_seconds = time.monotonic() - origin
    outcome.faults = injector.log
    ends = ([f.began for f in injector.log[1:]] + [time.monotonic()])[: len(injector.log)]
    outcome.resumes = [
        {
            "since the fault": probe.resume_times(f.began, end),
            "since recovery": probe.resume_times(f.recovered, end) if f.recovered is not None else {},
        }
        for f, end in zip(injector.log, ends, strict=True)
    ]
    say(f"load done in {outcome.load_seconds:.0f} s: {workload.done_count()}/{len(workload.chains)} chains finished")


IN_FLIGHT_MARGIN_S = 30.0
"""A re-execution counts as "in flight at a fault" when its first execution began at most this long before a
fault or while the fault lasted (a rebalance it caused included: up to this long after its recovery)."""


def _unexplained(outcome: Outcome) -> list[str]:
    """Re-executed steps whose first execution was not near any fault (at-least-once allows them only there)."""
    assert outcome.report is not None
    to_wall = time.time() - time.monotonic()
    spans = [
        (
            (f.began + to_wall - IN_FLIGHT_MARGIN_S) * 1000,
            ((f.recovered or f.began) + to_wall + IN_FLIGHT_MARGIN_S) * 1000,
        )
        for f in outcome.faults
    ]
    return [
        f"{item.key} (first execution at {item.at_ms[0]})"
        for item in outcome.report.reexecutions
        if item.at_ms and not any(lo <= item.at_ms[0] <= hi for lo, hi in spans)
    ]


_PATTERNS = {
    "tracebacks": re.compile(r"^Traceback"),
    "reconnects": re.compile(r"reconnecting in"),
    "fenced": re.compile(r"[Ff]enc"),
    "errors": re.compile(r"\bERROR\b"),
}


def _scan(log: Path) -> dict[str, int]:
    """How often each pattern of interest occurs in a process log."""
    text = log.read_text(errors="replace").splitlines() if log.exists() else []
    return {name: sum(1 for line in text if pattern.search(line)) for name, pattern in _PATTERNS.items()}


async def _drop(settings: Settings) -> None:
    """Delete the run's topics and keyspace."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if n.startswith(settings.topic_prefix + ".")]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()
    host, port = settings.cassandra_host_port

    def drop_keyspace() -> None:
        with CassandraConnection(CassandraTarget(host, port)) as conn:
            conn.session.execute(f"DROP KEYSPACE IF EXISTS {settings.keyspace}")

    await asyncio.to_thread(drop_keyspace)
