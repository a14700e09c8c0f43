"""kflow beside DBOS on PostgreSQL: the same four workloads, one invocation, one table of figures and ratios.

    python -m bench.compare [--reps 1] [--kflow-only] [--peers DIR] [--dbos-python PATH]

kflow's side is ``bench.durable`` (processor, worker and materializer as separate processes on the servers of
``kflow dev up``), run without the history view (``--materializer off``), as the README's full stack, and as the
full stack with local steps (``--local``: the processor runs the steps, ``kflow processor --run-steps``).
DBOS's side is the peer benchmark kept beside the checkout (``shared/peers/bench_dbos.py`` next to the repository's
folder, or ``--peers``), run with the Python of a virtualenv holding ``dbos`` (``~/.cache/dbos-venv`` or
``--dbos-python``) against the Debian PostgreSQL cluster (``pg_ctlcluster``). Each side runs while the other's
servers are stopped, so neither pays for the other's idle servers; kflow's servers are started again at the end
if they were running before. Absolute figures on a shared machine drift from day to day: read the ratios.
Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "peers"
DBOS_PYTHON = Path.home() / ".cache" / "dbos-venv" / "bin" / "python"
PG_BASE = "postgresql://postgres:dbos@127.0.0.1:5432"

Figures = dict[str, float]

# bench.durable's lines -> figures
PATTERNS = {
    "runs_per_s": r"^\(a\) .* -> ([\d,]+) runs/s",
    "p50_ms": r"^\(b\) .* p50 ([\d.]+) ms",
    "p99_ms": r"^\(b\) .* p99 ([\d.]+) ms",
    "long_s": r"^\(c\) .*: ([\d.]+) s total",
    "sleep_p50_ms": r"^\(d\) .* p50 (\d+) ms",
    "sleep_p99_ms": r"^\(d\) .* p99 (\d+) ms",
    "sleep_max_ms": r"^\(d\) .* max (\d+) ms",
}

# (label, figure, better when higher, goal for kflow's full stack as a ratio to DBOS or an absolute bound)
ROWS: list[tuple[str, str, bool, str]] = [
    ("1,000 runs x 3 steps (runs/s)", "runs_per_s", True, ">= 5x DBOS"),
    ("1-step start->result p50 (ms)", "p50_ms", False, "<= 1.5x DBOS (<= 1x with local steps)"),
    ("1-step start->result p99 (ms)", "p99_ms", False, "p99 <= 2x p50"),
    ("1,000 sequential steps (s)", "long_s", False, "<= 0.25x DBOS with local steps"),
    ("sleep('1s') lateness p50 (ms)", "sleep_p50_ms", False, ""),
    ("sleep('1s') lateness p99 (ms)", "sleep_p99_ms", False, "<= 50 ms"),
    ("sleep('1s') lateness max (ms)", "sleep_max_ms", False, ""),
]


def parse_durable(text: str) -> Figures:
    """The figures of one ``bench.durable`` output (a figure it did not print is missing)."""
    figures: Figures = {}
    for name, pattern in PATTERNS.items():
        if match := re.search(pattern, text, re.MULTILINE):
            figures[name] = float(match.group(1).replace(",", ""))
    return figures


def parse_dbos(lines: list[dict[str, object]]) -> list[Figures]:
    """DBOS's JSON result lines, grouped by repetition into the same figures as kflow's."""
    by_rep: dict[int, Figures] = {}
    names = {
        "throughput:start": {"wf_per_s": "runs_per_s"},
        "latency": {"p50_ms": "p50_ms", "p99_ms": "p99_ms"},
        "longwf": {"total_s": "long_s"},
        # 20 sleeps: the nearest-rank p99 of 20 samples is their maximum
        "sleep": {"late_p50_ms": "sleep_p50_ms", "late_max_ms": "sleep_max_ms"},
    }
    for line in lines:
        test, rep = str(line.get("test")), int(str(line.get("rep", 0)))
        for source, target in names.get(test, {}).items():
            if isinstance(value := line.get(source), int | float):
                by_rep.setdefault(rep, {})[target] = float(value)
                if source == "late_max_ms":
                    by_rep[rep]["sleep_p99_ms"] = float(value)
    return [by_rep[rep] for rep in sorted(by_rep)]


def median_of(runs: list[Figures]) -> Figures:
    """Per figure, the median over the repetitions that have it."""
    names = {name for figures in runs for name in figures}
    return {name: statistics.median(f[name] for f in runs if name in f) for name in names}


def kflow(materializer: str, runs: int, local: bool) -> Figures:
    """One ``bench.durable`` run on the dev servers; its output is echoed."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.durable", "--materializer", materializer, "--runs", str(runs)]
        + (["--local"] if local else []),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        raise SystemExit(f"bench.durable --materializer {materializer} failed:\n{done.stderr[-2000:]}")
    return parse_durable(done.stdout)


def dev(*args: str) -> subprocess.CompletedProcess[str]:
    """``kflow dev …`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "dev", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def kafka_running() -> bool:
    status = dev("status", "--json")
    return status.returncode == 0 and any(s.get("pid") for s in json.loads(status.stdout or "[]"))


def dbos_unavailable(peers: Path, python: Path) -> str | None:
    """Why DBOS cannot run here (None: it can)."""
    if not (peers / "bench_dbos.py").is_file():
        return f"no peer benchmark at {peers}"
    if not python.is_file():
        return f"no Python with dbos at {python} (see {peers / 'README.md'})"
    if shutil.which("pg_ctlcluster") is None:
        return "no PostgreSQL (apt-get install postgresql)"
    return None


def postgres(action: str) -> None:
    subprocess.run(["pg_ctlcluster", "15", "main", action], check=True, capture_output=True, timeout=120)


def dbos(peers: Path, python: Path, reps: int) -> list[Figures]:
    """The peer benchmark's four workloads on PostgreSQL (started here, stopped afterwards)."""
    postgres("start")
    try:
        subprocess.run(
            ["su", "postgres", "-c", "psql -q -c \"ALTER USER postgres PASSWORD 'dbos';\""],
            check=True,
            capture_output=True,
            timeout=60,
        )
        tests = ["--tests", "throughput:start,latency,longwf,sleep", "--reps", str(reps)]
        done = subprocess.run(
            [str(python), str(peers / "bench_dbos.py"), "all", "--backends", "postgres", *tests],
            capture_output=True,
            text=True,
            timeout=3600,
            env={**os.environ, "PG_BASE": PG_BASE},
            cwd=peers,
        )
    finally:
        postgres("stop")
    print(done.stdout, end="", flush=True)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"the DBOS benchmark printed no result:\n{done.stderr[-2000:]}")
    return parse_dbos(lines)


def table(columns: dict[str, Figures]) -> list[str]:
    """The comparison: one row per figure, one column per configuration, kflow's full stack (without and with local
    steps) / DBOS, the goal."""
    names = list(columns)
    width = max(len(label) for label, *_ in ROWS)
    head = f"{'workload':<{width}} | " + " | ".join(f"{n:>14}" for n in names) + " | full/DBOS | local/DBOS | goal"
    lines = [head, "-" * len(head)]
    for label, name, _higher, goal in ROWS:
        cells = [columns[n].get(name) for n in names]
        shown = " | ".join(f"{c:>14,.1f}" if c is not None else f"{'-':>14}" for c in cells)
        base = columns.get("DBOS", {}).get(name)
        ratios = []
        for column in ("kflow full", "full+local"):
            value = columns.get(column, {}).get(name)
            ratios.append(f"{value / base:>8.2f}x" if base and value is not None else f"{'-':>9}")
        lines.append(f"{label:<{width}} | {shown} | {' | '.join(ratios)} | {goal}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1, help="repetitions of every measurement (medians shown)")
    parser.add_argument("--runs", type=int, default=1000, help="runs of the throughput workload (DBOS: 1,000)")
    parser.add_argument("--kflow-only", action="store_true", help="skip DBOS")
    parser.add_argument("--peers", type=Path, default=PEERS, help="folder of the peer benchmark (bench_dbos.py)")
    parser.add_argument("--dbos-python", type=Path, default=DBOS_PYTHON, help="a Python that has dbos installed")
    args = parser.parse_args()
    was_running = kafka_running()
    if not was_running and dev("up").returncode != 0:
        raise SystemExit("kflow dev up failed")
    columns: dict[str, Figures] = {}
    configurations = [("kflow no view", "off", False), ("kflow full", "separate", False)]
    configurations.append(("full+local", "separate", True))
    for name, materializer, local in configurations:
        columns[name] = median_of([kflow(materializer, args.runs, local) for _ in range(args.reps)])
    why_not = "--kflow-only" if args.kflow_only else dbos_unavailable(args.peers, args.dbos_python)
    if why_not is None:
        dev("down")
        try:
            columns = {"DBOS": median_of(dbos(args.peers, args.dbos_python, args.reps)), **columns}
        finally:
            if was_running:
                dev("up")
    else:
        print(f"DBOS not run: {why_not}")
        if not was_running:
            dev("down")  # leave the servers as they were
    print(f"\nmedians of {args.reps} repetition(s), {os.cpu_count()} cores, the other side's servers stopped")
    print("\n".join(table(columns)))


if __name__ == "__main__":
    main()
