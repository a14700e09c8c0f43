"""``python -m bench.chaos``: a chaos run — a workload driven while faults are applied, then the checker.

    python -m bench.chaos [--runs N] [--duration S] [--faults kill-processor,zombie,...] [--brokers 3|1]
    python -m bench.chaos --short        # the suite's version: a few minutes

Prints the fault log with timestamps, each consumer group's resume time after each fault, lost chains,
duplicate completions, re-executed steps and the checker's verdict; exits 1 on any violation or lost chain.
Server faults (brokers, Cassandra) run only on a private stack of the run's own (``KFLOW_HOME`` under the run
folder, ports shifted by ``--port-offset``), which needs ``kflow dev up --brokers``; without it they are
skipped and said so. The shared ``kflow dev up`` stack is never faulted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from bench.chaos.cluster import private_stack_supported
from bench.chaos.faults import ALL_FAULTS, PROCESS_FAULTS, Timings
from bench.chaos.run import Options, Outcome, chaos

LONG_FAULTS = [
    "kill-processor",
    "kill-worker",
    "zombie",
    "term-processor",
    "kill-broker",
    "term-worker",
    "kill-leader",
    "kill-processor",
    "stop-cassandra",
]
SHORT_FAULTS = ["kill-processor", "term-worker", "zombie", "kill-broker"]


def parse(argv: list[str] | None) -> Options:
    """The options of the command line (``--short`` changes the defaults, explicit options win)."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the suite's version: 40 chains, 2+2 processes")
    parser.add_argument("--runs", type=int, help="chains started (each: --links + 1 runs and their children)")
    parser.add_argument("--links", type=int, default=2, help="continue-as-new hops per chain (default 2)")
    parser.add_argument("--duration", type=float, help="seconds over which chains start and faults are applied")
    parser.add_argument("--faults", help=f"comma-separated, applied in order, spread over the duration: {ALL_FAULTS}")
    parser.add_argument("--processors", type=int, help="kflow processor processes (each its own KFLOW_HOME)")
    parser.add_argument("--workers", type=int, help="kflow worker processes")
    parser.add_argument("--partitions", type=int, default=4, help="KFLOW_PARTITIONS (default 4)")
    parser.add_argument("--brokers", type=int, help="brokers of the private stack (3, or 1 for restart-broker)")
    parser.add_argument("--shared", action="store_true", help="use the shared dev stack (process faults only)")
    parser.add_argument("--private-cassandra", action=argparse.BooleanOptionalAction, help="own Cassandra too")
    parser.add_argument("--port-offset", type=int, default=1000, help="KFLOW_DEV_PORT_OFFSET of the private stack")
    parser.add_argument("--zombie-seconds", type=float, default=16.0, help="SIGSTOP length (session timeout 10 s)")
    parser.add_argument("--broker-down", type=float, default=20.0, help="seconds a killed broker stays down")
    parser.add_argument("--cassandra-down", type=float, default=60.0, help="seconds Cassandra stays stopped")
    parser.add_argument("--drain", type=float, default=300.0, help="longest wait for the last chains after the load")
    parser.add_argument(
        "--settle", type=float, default=15.0, help="least seconds between a recovery and the next fault"
    )
    parser.add_argument("--folder", type=Path, help="run folder: logs, step ledger, private stack")
    parser.add_argument("--keep", action="store_true", help="keep the topics, keyspace and private stack data")
    parser.add_argument("--log-level", default="WARNING", help="log level of the processes under test")
    args = parser.parse_args(argv)
    short = args.short
    faults = args.faults.split(",") if args.faults is not None else (SHORT_FAULTS if short else LONG_FAULTS)
    private = not args.shared and private_stack_supported()
    return Options(
        runs=args.runs or (40 if short else 300),
        links=args.links,
        duration=args.duration or (80.0 if short else 420.0),
        faults=[f.strip() for f in faults if f.strip()],
        processors=args.processors or (2 if short else 3),
        workers=args.workers or (2 if short else 3),
        partitions=args.partitions,
        private=private,
        brokers=args.brokers or 3,
        private_cassandra=args.private_cassandra if args.private_cassandra is not None else not short,
        port_offset=args.port_offset,
        drain=args.drain if not short or args.drain != 300.0 else 120.0,
        settle=args.settle,
        folder=args.folder,
        keep=args.keep,
        log_level=args.log_level,
        timings=Timings(
            zombie_seconds=args.zombie_seconds, broker_down=args.broker_down, cassandra_down=args.cassandra_down
        ),
    )


def render(outcome: Outcome) -> str:
    """The run's report."""
    lines = ["", "=== fault log ==="]
    for kind, reason in outcome.skipped.items():
        lines.append(f"skipped {kind}: {reason}")
    for fault, resume in zip(outcome.faults, outcome.resumes, strict=True):
        lines.append(fault.describe(outcome.origin))
        for since, groups in resume.items():
            lines.append(f"    resume {since} (first progress / every partition with work waiting):")
            lines += [f"      {role:<13} {times.describe()}" for role, times in groups.items()]
    if outcome.workload is not None:
        result = outcome.workload
        finished = len(result.chains) - len(result.lost)
        lines += [
            "=== workload ===",
            f"chains {len(result.chains)}, finished {finished}, lost {len(result.lost)}; load + drain "
            f"{outcome.load_seconds:.0f} s; driver retries {result.retries}",
        ]
        lines += [f"  LOST chain {root} (runs {result.chains[root].runs})" for root in result.lost[:20]]
    lines.append("=== processes (exit status; log lines: tracebacks, reconnects, fenced, errors) ===")
    for name, status in outcome.exits.items():
        lines.append(f"  {name:<12} exit {status}  {outcome.log_lines.get(name, {})}")
    if outcome.report is not None:
        lines += ["=== checker ===", outcome.report.render()]
        total = outcome.report.counts.get("re-executed steps", 0)
        lines.append(
            f"re-executed steps: {total}, of which not in flight at a fault: {len(outcome.unexplained)}"
            + "".join(f"\n  not near a fault: {line}" for line in outcome.unexplained[:20])
        )
    lines.append(f"=== verdict: {'OK' if outcome.ok else 'FAILED'} (run folder {outcome.folder}) ===")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the chaos scenario and print its report; 0 when nothing was lost and the checker found nothing."""
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("aiokafka", "cassandra"):  # the harness's own clients complain through every fault
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    options = parse(argv)
    unknown = [f for f in options.faults if f not in ALL_FAULTS]
    if unknown:
        print(f"unknown faults {unknown}; known: {', '.join(ALL_FAULTS)}", file=sys.stderr)
        return 2
    if not options.private:
        server_faults = [f for f in options.faults if f not in PROCESS_FAULTS]
        if server_faults:
            print(
                f"no private stack (kflow dev up --brokers missing, or --shared): skipping {server_faults}", flush=True
            )

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # unwinds through every finally: processes and stacks stopped

    signal.signal(signal.SIGTERM, stop)
    outcome = asyncio.run(chaos(options, lambda line: print(line, flush=True)))
    print(render(outcome), flush=True)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
