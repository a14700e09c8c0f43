"""Memory budgets under load on the real broker: the orchestrator's RSS stays under its configured bound.

    python -m bench.budgets [--runs 200] [--steps 40] [--result-kb 10] [--budget-mib 16] [--hook-runs 20]
                            [--payloads 30] [--payload-kb 20] [--early-kib 256] [--no-unbounded]

Starts ``kflow dev up`` if needed. For each configuration of ``KFLOW_LIVE_HISTORY_BYTES`` (a tiny budget, whose
peak RSS is the baseline; the budget under test; none) it creates a fresh topic prefix (2 partitions) and runs an
orchestrator and timer processor in a process of their own (``python -m bench.budgets --serve``, whose RSS is
sampled from /proc/<pid>/status every 0.1 s and which prints its ``OrchestratorStats``), a step worker and the
client in this process, and the same load:

1. ``--runs`` runs holding large histories (``--steps`` step results of ``--result-kb`` each, then waiting on a
   hook), at the end released and checked (a run whose history went to disk finishes as any other);
2. ``--hook-runs`` runs, each sent ``--payloads`` early hook payloads of ``--payload-kb`` (``KFLOW_EARLY_HOOK_BYTES``
   = ``--early-kib``): how many were queued, how many refused (and the reason the sender heard);
3. a ``buffer_all`` schedule whose run never ends, backfilled with 1000 fires, then firing every second; and an
   ``allow_all`` schedule whose arguments leave its state room for a few running runs: its fires are skipped once
   the state would pass the record limit, and resume when its runs end (the schedule never stops).

Prints, per configuration, the budget, the peak RSS, the bytes of history held (stats), evictions to disk and reads
back, then the early-hook and schedule figures and the bound: tiny-budget peak + 2 partitions x budget.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import platform
import signal
import sys
import tempfile
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from engine import Registry, ScheduleSpec
from streams import DevStack, HookDeliveryError, Settings, Topics, create_topics
from streams.client import Client
from streams.processors import Orchestrator, StepWorker, TimerProcessor

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
APP = "bench.budget_workflows"
STATE_LIMIT = 999_000  # the largest schedule state the orchestrator writes (the record limit, less framing)


@dataclasses.dataclass
class Figures:
    name: str
    budget: int
    peak_rss: int = 0
    baseline_rss: int = 0
    stats: dict[str, int] = dataclasses.field(default_factory=dict)
    phases: list[str] = dataclasses.field(default_factory=list)  # the peak RSS of each phase
    phase_peak: int = 0
    peak_held: int = 0
    lines: list[str] = dataclasses.field(default_factory=list)


def rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def serve() -> None:
    """The measured process: an orchestrator and a timer processor, its stats printed as JSON lines."""
    settings = Settings.from_env()
    registry = Registry.from_module(APP)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    with tempfile.TemporaryDirectory() as state:
        services = [Orchestrator(settings, registry), TimerProcessor(settings, state_dir=Path(state))]
        for service in services:
            await service.start()
        orchestrator = services[0]
        assert isinstance(orchestrator, Orchestrator)
        while not stop.is_set():
            print(json.dumps(dataclasses.asdict(orchestrator.stats)), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)
        for service in reversed(services):
            await service.stop()


async def until(check: object, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check() if callable(check) else check
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def histories(client: Client, args: argparse.Namespace, worker: StepWorker, out: Figures) -> list[str]:
    run_ids = await asyncio.gather(
        *(client.start("heavy", args.steps, args.result_kb * 1024) for _ in range(args.runs))
    )
    await until(lambda: worker.stats.steps_run >= args.runs * args.steps, 600, "the heavy runs' steps")
    out.lines.append(f"  {args.runs} runs x {args.steps} results of {args.result_kb} KiB held running")
    return list(run_ids)


async def early_hooks(client: Client, args: argparse.Namespace, out: Figures) -> None:
    names = [f"h{i}" for i in range(args.payloads)]
    run_ids = [await client.start("late_hooks", names) for _ in range(args.hook_runs)]
    gate = asyncio.Semaphore(16)
    outcomes: dict[str, int] = {}
    reasons: list[str] = []

    async def send(run_id: str, name: str) -> None:
        async with gate:
            try:
                outcome = await client.resume_hook(f"{run_id}:{name}", "p" * (args.payload_kb * 1024), timeout=120)
            except HookDeliveryError as exc:
                outcome, _ = "refused", reasons.append(exc.reason)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    await asyncio.gather(*(send(run_id, name) for run_id in run_ids for name in names))
    budgeted = [r for r in reasons if "early_hook_bytes" in r]
    out.lines.append(
        f"  early hooks: budget {args.early_kib} KiB/run, {args.hook_runs} runs x {args.payloads} payloads of "
        f"{args.payload_kb} KiB: {outcomes.get('queued', 0)} queued, {outcomes.get('refused', 0)} refused "
        f"({len(budgeted)} for the budget)"
    )
    if budgeted:
        out.lines.append(f"    reason heard: {budgeted[0]}")


async def schedules(client: Client, out: Figures) -> None:
    every = ScheduleSpec(interval="1s")
    await client.schedules.create("overlap", "held", every, None, overlap="buffer_all", timeout=60)
    await client.schedules.trigger("overlap", timeout=60)
    await client.schedules.backfill("overlap", 1_700_000_000_000, 1_700_001_000_000, timeout=60)  # 1000 fires
    first = await client.schedules.get("overlap")
    assert first is not None
    await until(lambda: _skipped_past(client, "overlap", first.skipped + 3), 60, "fires past the buffer")
    overlap = await client.schedules.get("overlap")
    assert overlap is not None
    out.lines.append(
        f"  schedule buffer_all: {len(overlap.buffered)} fires buffered (the most kept), {overlap.skipped} skipped, "
        f"state {len(client.records.encode(overlap)):,} bytes"
    )
    probe = "x" * 900_000
    made = await client.schedules.create("big", "held", every, probe, overlap="allow_all", timeout=60)
    assert made is not None
    grow = STATE_LIMIT - 250 - len(client.records.encode(made))  # room for a handful of running runs
    await client.schedules.update("big", args=["x" * (900_000 + grow)], timeout=60)
    await until(lambda: _skipped_past(client, "big", 3), 60, "fires skipped at the record limit")
    big = await client.schedules.get("big")
    assert big is not None
    fires, size = big.fires, len(client.records.encode(big))
    for run_id in big.running:
        await client.resume_hook(f"{run_id}:release", None, timeout=60)
    await until(lambda: _fired_past(client, "big", fires + 2), 60, "fires again once its runs ended")
    after = await client.schedules.get("big")
    assert after is not None
    out.lines.append(
        f"  schedule allow_all, arguments of {900_000 + grow:,} bytes: {fires} fires then {big.skipped} skipped at "
        f"the record limit (state {size:,} bytes <= {STATE_LIMIT:,}); after its runs ended {after.fires} fires"
    )
    for schedule_id in ("overlap", "big"):
        await client.schedules.delete(schedule_id, timeout=60)


async def _skipped_past(client: Client, schedule_id: str, skipped: int) -> bool:
    state = await client.schedules.get(schedule_id)
    return state is not None and state.skipped >= skipped


async def _fired_past(client: Client, schedule_id: str, fires: int) -> bool:
    state = await client.schedules.get(schedule_id)
    return state is not None and state.fires >= fires


async def load(base: Settings, name: str, budget: int, args: argparse.Namespace) -> Figures:
    tag = uuid.uuid4().hex[:8]
    settings = base.replace(topic_prefix=f"bench-budget-{tag}", partitions=2)
    await create_topics(settings.kafka_target(), Topics(settings.topic_prefix), settings.partitions)
    env = {
        **os.environ,
        "KFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "KFLOW_PARTITIONS": "2",
        "KFLOW_LIVE_HISTORY_BYTES": str(budget),
        "KFLOW_EARLY_HOOK_BYTES": str(args.early_kib * 1024),
        "PYTHONPATH": str(ROOT),
    }
    out = Figures(name, budget)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.budgets", "--serve", env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )

    async def watch() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            out.stats = json.loads(line)
            out.peak_held = max(out.peak_held, out.stats.get("history_peak_bytes", 0))

    async def sample() -> None:
        while proc.returncode is None:
            with contextlib.suppress(OSError):
                now = rss(proc.pid)
                out.peak_rss, out.phase_peak = max(out.peak_rss, now), max(out.phase_peak, now)
            await asyncio.sleep(0.1)

    tasks = [asyncio.create_task(watch()), asyncio.create_task(sample())]
    registry = Registry.from_module(APP)
    worker = StepWorker(settings, registry, concurrency=16)
    await worker.start()
    try:
        async with Client(settings=settings, registry=registry, history="kafka") as client:
            warm = await client.start("held", None)
            await client.resume_hook(f"{warm}:release", None, timeout=120)
            await client.result(warm, timeout=120)
            out.baseline_rss = rss(proc.pid)

            def phase(name: str) -> None:
                out.phases.append(f"{name} {out.phase_peak / MIB:.1f}")
                out.phase_peak = 0

            await early_hooks(client, args, out)
            phase("early hooks")
            await schedules(client, out)
            phase("schedules")
            heavy = await histories(client, args, worker, out)
            phase("histories")
            for run_id in heavy:
                await client.resume_hook(f"{run_id}:done", None, timeout=120)
            results = await asyncio.gather(*(client.result(r, timeout=300) for r in heavy))
            assert results == [args.steps] * len(heavy), "a run whose history went to disk ended otherwise"
            await asyncio.sleep(0.6)  # the last stats line
    finally:
        await worker.stop()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await proc.wait()
        for task in tasks:
            task.cancel()
        await drop_topics(settings)
    return out


async def drop_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if n.startswith(settings.topic_prefix + ".")]
        await admin.delete_topics(names)
    finally:
        await admin.close()


def describe(fig: Figures) -> list[str]:
    budget = "none" if fig.budget >= 1 << 40 else f"{fig.budget / MIB:.2f} MiB/partition"
    stats = fig.stats
    return [
        f"[{fig.name}] KFLOW_LIVE_HISTORY_BYTES: {budget}; peak RSS {fig.peak_rss / MIB:.1f} MiB (after warm-up "
        f"{fig.baseline_rss / MIB:.1f} MiB); history held: peak {fig.peak_held / MIB:.2f} MiB in one partition; "
        f"moved to disk {stats.get('history_evictions', 0)} times, read back {stats.get('history_reads', 0)}",
        f"  peak RSS by phase (MiB): {', '.join(fig.phases)}",
        *fig.lines,
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--result-kb", type=int, default=10)
    parser.add_argument("--budget-mib", type=float, default=16.0)
    parser.add_argument("--hook-runs", type=int, default=20)
    parser.add_argument("--payloads", type=int, default=30)
    parser.add_argument("--payload-kb", type=int, default=20)
    parser.add_argument("--early-kib", type=int, default=256)
    parser.add_argument("--no-unbounded", action="store_true", help="skip the configuration without a budget")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # refusals and skipped fires are the point here: not logged one by one
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a fresh topic's leader election, retried
    if args.serve:
        return await serve()
    base = Settings.from_env()
    if not os.environ.get("KFLOW_BOOTSTRAP"):
        await asyncio.to_thread(DevStack(base.home).up, log=lambda line: None)
    budget = int(args.budget_mib * MIB)
    configs = [("tiny", 64 * 1024), ("budget", budget)] + ([] if args.no_unbounded else [("unbounded", 1 << 40)])
    print(
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}; load: {args.runs} "
        f"runs x {args.steps} x {args.result_kb} KiB, {args.hook_runs} x {args.payloads} early payloads of "
        f"{args.payload_kb} KiB, 2 schedules; 2 partitions in one orchestrator process",
        flush=True,
    )
    figures = []
    for name, value in configs:
        figures.append(await load(base, name, value, args))
        print("\n".join(describe(figures[-1])), flush=True)
    tiny, measured = figures[0], figures[1]
    bound = tiny.peak_rss + 2 * budget
    verdict = "under" if measured.peak_rss <= bound else "OVER"
    print(
        f"bound: tiny-budget peak {tiny.peak_rss / MIB:.1f} MiB + 2 x {budget / MIB:.2f} MiB = {bound / MIB:.1f} MiB; "
        f"with the budget the peak RSS was {measured.peak_rss / MIB:.1f} MiB: {verdict}"
        + ("" if len(figures) < 3 else f"; without a budget {figures[2].peak_rss / MIB:.1f} MiB")
    )


if __name__ == "__main__":
    asyncio.run(main())
