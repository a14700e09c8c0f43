"""The chaos checker: judges the topics and Cassandra after a run (``python -m bench.chaos.checker``).

Violations (any one fails the run):

- a started run without exactly one ``RunFinished``, a ``RunFinished`` that disagrees with the history's
  terminal event, a chain whose last run did not complete with ``expected_result`` of its arguments, a child
  whose result is not ``2 x + 1``;
- a history that is not dense (seq 1..n), holds an event twice, does not start with ``WorkflowStarted``, has a
  terminal event before its end, or completes one step position twice;
- a timer that fired before its due time (``TimerFired.fired_at`` or the ``TimerElapsed`` event);
- a Cassandra history that differs from the Kafka history, event for event, or a ``runs`` row with the wrong
  status; a materializer still behind after the wait;
- a step attempt recorded in a history that no worker executed (with the ledger).

Reported, not violations (at-least-once is the contract): re-executed steps (ledger executions beyond the
attempts the histories recorded), duplicate ``StepResult`` records, dead letters, aborted history records.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.chaos.evidence import Evidence, Execution, gather
from bench.chaos.workflows import WORKFLOW, expected_result
from engine.runtime import (
    ChildWorkflowStarted,
    HistoryEvent,
    StepCompleted,
    StepFailed,
    StepScheduled,
    TimerElapsed,
    TimerScheduled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowStarted,
    status_of,
)
from streams import Settings

MAX_LISTED = 20
"""Violations of one kind listed in full; the rest are counted."""


@dataclass(frozen=True)
class ReExecution:
    """A step call executed more often than its recorded attempts."""

    key: str
    executions: int
    attempts: int
    pids: tuple[int, ...]
    at_ms: tuple[int, ...] = ()


@dataclass
class Report:
    """The checker's verdict: counts, violations (each a line), re-executions."""

    counts: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    reexecutions: list[ReExecution] = field(default_factory=list)
    dead_letters: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No violation."""
        return not self.violations

    def violate(self, line: str) -> None:
        """Record one violation."""
        self.violations.append(line)

    def render(self) -> str:
        """The report as text."""
        lines = ["checker counts: " + ", ".join(f"{k} {v}" for k, v in self.counts.items())]
        for text, n in sorted(self.dead_letters.items(), key=lambda item: -item[1]):
            lines.append(f"  dead letter x{n}: {text[:160]}")
        for item in self.reexecutions[:MAX_LISTED]:
            lines.append(
                f"  re-executed: {item.key}: {item.executions} executions, {item.attempts} attempts, pids {item.pids}"
            )
        kinds = collections.Counter(v.split(":", 1)[0] for v in self.violations)
        shown = collections.Counter[str]()
        for line in self.violations:
            kind = line.split(":", 1)[0]
            shown[kind] += 1
            if shown[kind] <= MAX_LISTED:
                lines.append(f"  VIOLATION {line}")
        for kind, n in kinds.items():
            if n > MAX_LISTED:
                lines.append(f"  ... {n - MAX_LISTED} more '{kind}' violations")
        lines.append(f"checker verdict: {'OK' if self.ok else f'{len(self.violations)} VIOLATIONS'}")
        return "\n".join(lines)


def judge(evidence: Evidence, roots: list[str] | None = None) -> Report:
    """Check every invariant over ``evidence``; ``roots``: the chains the driver started (None: from history)."""
    report = Report()
    for line in evidence.undecodable:
        report.violate(f"undecodable: {line}")
    _histories(evidence, report)
    _completions(evidence, report)
    found_roots = _results(evidence, report, roots)
    _timers(evidence, report)
    _cassandra(evidence, report)
    _executions(evidence, report)
    attempts = collections.Counter((r.run_id, r.position, r.attempt) for r in evidence.step_results)
    report.dead_letters = dict(collections.Counter(evidence.dead_letters))
    report.counts = {
        "chains": len(found_roots),
        "runs": len(evidence.history),
        "history events": sum(len(h) for h in evidence.history.values()),
        "completions": sum(len(c) for c in evidence.completions.values()),
        "duplicate completions": sum(len(c) - 1 for c in evidence.completions.values() if len(c) > 1),
        "step results": len(evidence.step_results),
        "duplicate step results": sum(n - 1 for n in attempts.values() if n > 1),
        "re-executed steps": sum(r.executions - r.attempts for r in report.reexecutions),
        "timers fired": len(evidence.timers_fired),
        "dead letters": len(evidence.dead_letters),
        "aborted history records": evidence.aborted_history_records,
        "violations": len(report.violations),
    }
    return report


def _histories(evidence: Evidence, report: Report) -> None:
    for run_id, events in evidence.history.items():
        seqs = [e.seq for e in events]
        if seqs != list(range(1, len(events) + 1)):
            twice = sorted(s for s, n in collections.Counter(seqs).items() if n > 1)
            report.violate(f"history not dense: run {run_id} seqs {_brief(seqs)} (twice: {twice})")
        if not events or not isinstance(events[0], WorkflowStarted):
            report.violate(f"history start: run {run_id} does not begin with WorkflowStarted")
        terminal = [i for i, e in enumerate(events) if status_of(e) is not None]
        if len(terminal) > 1 or (terminal and terminal[0] != len(events) - 1):
            report.violate(f"history end: run {run_id} has terminal events at {terminal} of {len(events)}")
        completed = collections.Counter(e.position for e in events if isinstance(e, StepCompleted))
        for position, n in completed.items():
            if n > 1:
                report.violate(f"step completed twice: run {run_id} position {position} x{n}")
        distinct = {_identity(e) for e in events}
        if len(distinct) != len(events):
            report.violate(f"event twice: run {run_id} has {len(events) - len(distinct)} repeated events")


def _identity(event: HistoryEvent) -> tuple[object, ...]:
    """An event without its seq and timestamp (two equal identities: the same event written twice)."""
    fields = dataclasses.asdict(event)
    fields.pop("seq"), fields.pop("timestamp")
    return (type(event).__name__, repr(sorted(fields.items())))


def _completions(evidence: Evidence, report: Report) -> None:
    for run_id, events in evidence.history.items():
        finished = evidence.completions.get(run_id, [])
        terminal = events[-1] if events and status_of(events[-1]) is not None else None
        if len(finished) > 1:
            report.violate(f"duplicate completions: run {run_id} has {len(finished)} RunFinished records")
        if terminal is None:
            report.violate(f"unfinished run: {run_id} ({type(events[-1]).__name__ if events else 'no events'} last)")
            continue
        if not finished:
            report.violate(f"missing completion: run {run_id} finished without a RunFinished record")
            continue
        record = finished[0]
        if record.status != status_of(terminal):
            report.violate(
                f"completion status: run {run_id} RunFinished {record.status} vs history {status_of(terminal)}"
            )
        if isinstance(terminal, WorkflowCompleted) and record.result != terminal.result:
            report.violate(f"completion result: run {run_id} {record.result!r} vs history {terminal.result!r}")
    for run_id in evidence.completions.keys() - evidence.history.keys():
        report.violate(f"completion without history: run {run_id}")


def _results(evidence: Evidence, report: Report, roots: list[str] | None) -> list[str]:
    found = [
        run_id
        for run_id, events in evidence.history.items()
        if events
        and isinstance(events[0], WorkflowStarted)
        and events[0].workflow_name == WORKFLOW
        and events[0].continued_from is None
    ]
    for root in roots or []:
        if root not in evidence.history:
            report.violate(f"lost run: {root} was started but has no history")
    for root in found:
        start = evidence.history[root][0]
        assert isinstance(start, WorkflowStarted)
        want = expected_result(*start.args.args, **start.args.kwargs)
        run_id, hops = root, 0
        while True:
            events = evidence.history.get(run_id, [])
            last = events[-1] if events else None
            if isinstance(last, WorkflowContinuedAsNew) and hops < 1000:
                run_id, hops = last.next_run_id, hops + 1
                continue
            break
        if not isinstance(last, WorkflowCompleted):
            report.violate(f"chain result: chain {root} ends at run {run_id} with {type(last).__name__}")
        elif last.result != want:
            report.violate(f"chain result: chain {root} returned {last.result!r}, expected {want!r}")
    for events in evidence.history.values():
        for child in (e for e in events if isinstance(e, ChildWorkflowStarted)):
            child_events = evidence.history.get(child.child_run_id, [])
            want = 2 * int(child.args.args[1]) + 1
            last = child_events[-1] if child_events else None
            if not isinstance(last, WorkflowCompleted) or last.result != want:
                got = last.result if isinstance(last, WorkflowCompleted) else type(last).__name__
                report.violate(f"child result: child {child.child_run_id} gave {got!r}, expected {want}")
    return found


def _timers(evidence: Evidence, report: Report) -> None:
    for fired in evidence.timers_fired:
        if fired.fired_at < fired.fire_at:
            report.violate(
                f"timer early: TimerFired {fired.run_id} {fired.timer_id} {fired.fire_at - fired.fired_at} ms early"
            )
    for run_id, events in evidence.history.items():
        due = {e.timer_id: e.fire_at for e in events if isinstance(e, TimerScheduled)}
        for elapsed in (e for e in events if isinstance(e, TimerElapsed)):
            fire_at = due.get(elapsed.timer_id)
            if fire_at is None:
                report.violate(f"timer unknown: run {run_id} elapsed {elapsed.timer_id} never scheduled")
            elif elapsed.timestamp < fire_at:
                report.violate(
                    f"timer early: run {run_id} {elapsed.timer_id} elapsed {fire_at - elapsed.timestamp} ms early"
                )


def _cassandra(evidence: Evidence, report: Report) -> None:
    if evidence.materializer_lag != 0:
        report.violate(f"materializer behind: {evidence.materializer_lag} history records not committed")
    for run_id, events in evidence.history.items():
        stored = evidence.cassandra.get(run_id, [])
        if stored != events:
            differ = next((i for i, (a, b) in enumerate(zip(stored, events, strict=False)) if a != b), None)
            report.violate(
                f"cassandra differs: run {run_id} {len(stored)} events in Cassandra vs {len(events)} in Kafka"
                + (f", first difference at index {differ}" if differ is not None else "")
            )
        terminal = status_of(events[-1]) if events else None
        if terminal is not None and evidence.cassandra_status.get(run_id) != terminal:
            report.violate(f"cassandra status: run {run_id} {evidence.cassandra_status.get(run_id)} vs {terminal}")


def _executions(evidence: Evidence, report: Report) -> None:
    if evidence.executions is None:
        return
    attempts: collections.Counter[str] = collections.Counter()
    for events in evidence.history.values():
        keys = {e.position: str(e.args.args[0]) for e in events if isinstance(e, StepScheduled)}
        for event in events:
            if isinstance(event, StepCompleted | StepFailed):
                attempts[keys.get(event.position, f"?{event.run_id}:{event.position}")] += 1
    executions: dict[str, list[Execution]] = evidence.executions
    for key in sorted(attempts.keys() | executions.keys()):
        done, recorded = len(executions.get(key, [])), attempts[key]
        if done < recorded:
            report.violate(f"attempt not executed: step {key} has {recorded} recorded attempts, {done} executions")
        elif done > recorded:
            pids = tuple(e.pid for e in executions[key])
            times = tuple(e.at_ms for e in executions[key])
            report.reexecutions.append(ReExecution(key, done, recorded, pids, times))


def _brief(seqs: list[int]) -> str:
    return str(seqs) if len(seqs) <= 12 else f"{seqs[:6]}…{seqs[-6:]}"


async def check(settings: Settings, chaos_dir: Path | None, roots: list[str] | None = None) -> Report:
    """Read the evidence of ``settings``' topics and keyspace and judge it."""
    return judge(await gather(settings, chaos_dir), roots)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.chaos.checker --prefix P --keyspace K``: print the report; exit 1 on a violation."""
    parser = argparse.ArgumentParser(description="Check a chaos run's topics and Cassandra keyspace.")
    parser.add_argument("--prefix", required=True, help="the run's topic prefix")
    parser.add_argument("--keyspace", required=True, help="the run's Cassandra keyspace")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default KFLOW_BOOTSTRAP)")
    parser.add_argument("--cassandra", help="Cassandra host:port (default KFLOW_CASSANDRA)")
    parser.add_argument("--chaos-dir", type=Path, help="the run folder holding the step ledger (steps/)")
    args = parser.parse_args(argv)
    settings = Settings.from_env().replace(topic_prefix=args.prefix, keyspace=args.keyspace)
    if args.bootstrap:
        settings = settings.replace(bootstrap=args.bootstrap)
    if args.cassandra:
        settings = settings.replace(cassandra=args.cassandra)
    report = asyncio.run(check(settings, args.chaos_dir))
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
