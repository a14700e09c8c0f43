"""``kflow compact``: drop the hot state of runs finished before a retention, purge their history if asked,
and report what was reclaimed (docs/storage.md, "Compaction")."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from engine.runtime import SystemClock
from streams._settings import Settings
from streams._topics import Topics
from streams.cli._errors import UsageError
from streams.ops import CompactedRun, CompactReport, OpsError, compact, format_time, parse_older_than

_PROGRESS_EVERY = 1000  # runs between two progress lines on stderr


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``compact`` to the ``kflow`` parser."""
    command = groups.add_parser(
        "compact",
        help="drop hot state of finished runs, apply retention; report what was reclaimed",
        description="For every run finished longer ago than --older-than: send the orchestrator a ForgetRun "
        "(it drops the run's state and tombstones its marker on <prefix>.state; later records "
        "for the run go to <prefix>.dlq) and, once it confirmed, mark the run compacted in Cassandra "
        "(a run it did not confirm is left for the next pass). The run stays "
        "visible in `kflow runs show`; its history is kept unless --purge-history.",
    )
    command.add_argument(
        "--older-than",
        required=True,
        metavar="DURATION",
        help="retention: runs finished longer ago than this (7d, 12h, 30m; 0: every finished run)",
    )
    command.add_argument(
        "--purge-history", action="store_true", help="also delete the runs' events from Cassandra (default: keep them)"
    )
    command.add_argument("--dry-run", action="store_true", help="list and count, change nothing, send nothing")
    command.add_argument("--json", action="store_true", help="machine-readable output")
    command.set_defaults(handler=_compact)


def _compact(args: argparse.Namespace, settings: Settings) -> int:
    try:
        older_than = parse_older_than(args.older_than)
    except OpsError as exc:  # a bad argument value
        raise UsageError(str(exc)) from None
    listed: list[CompactedRun] = []  # a dry run lists its runs; a real one only counts them
    left: list[CompactedRun] = []  # runs the orchestrator did not confirm
    handled = 0

    def progress(run: CompactedRun) -> None:
        nonlocal handled
        handled += 1
        if run.refused is not None:
            left.append(run)
            sys.stderr.write(f"compact: {run.run_id} left for the next pass: {run.refused}\n")
            return
        if not args.dry_run:
            if handled % _PROGRESS_EVERY == 0:
                sys.stderr.write(f"compact: {handled:,} runs done\n")
            return
        listed.append(run)
        if not args.json:
            print(
                f"would compact {run.run_id}  {run.workflow_name}  {run.status}  finished "
                f"{format_time(run.finished_at)} UTC" + ("" if run.forgotten else "  (history only)")
            )

    report = asyncio.run(
        compact(
            settings,
            older_than_ms=older_than,
            purge_history=args.purge_history,
            dry_run=args.dry_run,
            now_ms=SystemClock().now_ms(),
            progress=progress,
        )
    )
    if args.json:
        data = compact_report_json(report, older_than, listed)
        data["unconfirmed_runs"] = [{"run_id": run.run_id, "reason": run.refused} for run in left]
        print(json.dumps(data, indent=2))
    else:
        print(compact_report_text(report, Topics(settings.topic_prefix), args.purge_history))
    return 0


def compact_report_json(report: CompactReport, older_than_ms: int, listed: list[CompactedRun]) -> dict[str, object]:
    """``kflow compact --json``: the report's fields, the cutoff as text and, in a dry run, the run ids."""
    data: dict[str, object] = {
        "dry_run": report.dry_run,
        "older_than_ms": older_than_ms,
        "cutoff_ms": report.cutoff_ms,
        "cutoff": f"{format_time(report.cutoff_ms)} UTC",
        "runs": report.runs,
        "histories_purged": report.histories_purged,
        "events_purged": report.events_purged,
        "cassandra_bytes_purged": report.cassandra_bytes_purged,
        "state_bytes_tombstoned": report.state_bytes_tombstoned,
        "unconfirmed": report.unconfirmed,
    }
    if report.dry_run:
        data["run_ids"] = [run.run_id for run in listed]
    return data


def compact_report_text(report: CompactReport, topics: Topics, purge_history: bool) -> str:
    """The human summary: runs compacted, state bytes to be reclaimed, history purged or kept."""
    dry = report.dry_run
    lines = [
        f"{'dry run: would compact' if dry else 'compacted'} {_runs(report.runs)} finished before "
        f"{format_time(report.cutoff_ms)} UTC: ForgetRun {'to' if dry else 'sent to'} {topics.inbox}, "
        f"about {report.state_bytes_tombstoned:,} bytes of run markers on {topics.name('state')} for log "
        "compaction to reclaim"
    ]
    if purge_history:
        lines.append(
            f"history: {report.events_purged:,} events ({report.cassandra_bytes_purged:,} bytes) of "
            f"{_runs(report.histories_purged)} {'would be ' if dry else ''}purged from Cassandra"
        )
    else:
        lines.append("history: kept in Cassandra (--purge-history deletes it)")
    if report.unconfirmed:
        lines.append(
            f"left for the next pass: {_runs(report.unconfirmed)} whose ForgetRun the orchestrator did not confirm "
            "(not marked, not purged: see the lines above)"
        )
    return "\n".join(lines)


def _runs(count: int) -> str:
    return f"{count:,} run" + ("" if count == 1 else "s")
