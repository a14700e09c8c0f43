"""``kflow runs list|show|events|cancel|lag``: ops views of the runs materialized in Cassandra."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from engine import RunStatus
from engine.runtime import SystemClock
from streams import ops as _ops
from streams._settings import Settings
from streams._topics import Topics
from streams.cli._errors import CliError, UsageError
from streams.kafka import committed_lag


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``runs`` and its sub-commands to the ``kflow`` parser."""
    runs = groups.add_parser("runs", help="list, inspect and cancel runs (from Cassandra)")
    commands = runs.add_subparsers(title="runs commands", metavar="COMMAND", parser_class=type(runs))
    commands.required = True
    listing = commands.add_parser("list", help="runs, newest first, one page at a time")
    listing.add_argument("--status", help="only runs in this status (running, completed, failed, …)")
    listing.add_argument("--workflow", metavar="NAME", help="only runs of this workflow")
    listing.add_argument(
        "--since", metavar="AGE|ISO", help="only runs started since: an age (7d, 12h) or an ISO date/time (UTC)"
    )
    listing.add_argument("--until", metavar="AGE|ISO", help="only runs started before: an age (1h) or an ISO date/time")
    listing.add_argument(
        "--id-prefix",
        metavar="PREFIX",
        help="only runs whose id starts with PREFIX (4 characters or more; fewer: that exact id), in id order",
    )
    listing.add_argument("--limit", type=positive_int, default=50, help="runs per page (default 50)")
    listing.add_argument("--page", metavar="TOKEN", help="the next-page token a previous listing printed")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_list)
    show = commands.add_parser("show", help="status, timings, args, result or error, children, chain")
    show.add_argument("run_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=_show)
    events = commands.add_parser("events", help="the run's history, in order")
    events.add_argument("run_id", metavar="ID")
    events.add_argument("--json", action="store_true", help="machine-readable output")
    events.set_defaults(handler=_events)
    cancel = commands.add_parser("cancel", help="ask a running run to cancel")
    cancel.add_argument("run_id", metavar="ID")
    cancel.add_argument("--reason", help="recorded in the run's history")
    cancel.add_argument("--wait", action="store_true", help="wait until the run has finished, and say how")
    cancel.add_argument(
        "--timeout", type=positive_float, default=60.0, help="seconds --wait waits for the run to end (default 60)"
    )
    cancel.add_argument("--json", action="store_true", help="print only {run_id, status, sent[, final_status]} as JSON")
    cancel.set_defaults(handler=_cancel)
    lag = commands.add_parser("lag", help="history records not yet materialized in Cassandra, per partition")
    lag.add_argument("--json", action="store_true", help="machine-readable output")
    lag.set_defaults(handler=_lag)


def positive_int(raw: str) -> int:
    """Argparse type of counts such as ``--limit``: an integer of at least 1."""
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}")
    return value


def positive_float(raw: str) -> float:
    """Argparse type of ``--timeout``: a number of seconds above 0."""
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:  # also NaN
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {raw!r}")
    return value


def _list(args: argparse.Namespace, settings: Settings) -> int:
    now = SystemClock().now_ms()
    since = None if args.since is None else _ops.parse_since(args.since, now)
    until = None if args.until is None else _until(args.until, now)
    with _ops.run_store(settings) as store:
        page = store.list_runs(
            status=args.status,
            workflow=args.workflow,
            limit=args.limit,
            page=args.page,
            since=since,
            until=until,
            run_id_prefix=args.id_prefix,
        )
    print(_ops.runs_json(page) if args.json else _ops.runs_table(page, SystemClock().now_ms()))
    return 0


def _until(text: str, now_ms: int) -> int:
    try:
        return _ops.parse_since(text, now_ms)
    except _ops.OpsError as exc:
        raise UsageError(str(exc).replace("--since", "--until", 1)) from None


def _show(args: argparse.Namespace, settings: Settings) -> int:
    with _ops.run_store(settings) as store:
        view = _ops.describe_run(store, args.run_id, settings.keyspace)
    print(_ops.show_json(view) if args.json else _ops.show_text(view, SystemClock().now_ms()))
    return 0


def _events(args: argparse.Namespace, settings: Settings) -> int:
    with _ops.run_store(settings) as store:
        row = _ops.require_run(store, args.run_id, settings.keyspace)
        events = store.events(args.run_id)
    note = _ops.purged_note(row) if not events else None
    if args.json:
        print(_ops.events_json(events))
        if note:
            print(note, file=sys.stderr)  # stdout stays the (empty) list
    else:
        print(note or _ops.events_table(events))
    return 0


def _cancel(args: argparse.Namespace, settings: Settings) -> int:
    with _ops.run_store(settings) as store:
        row = _ops.require_run(store, args.run_id, settings.keyspace)
    sent, final = False, None
    if row.status == RunStatus.RUNNING:  # as materialized: the client checks the history, which is current
        from streams.client import Client

        async def send() -> tuple[bool, str | None]:
            async with Client(settings=settings) as client:
                done = await client.cancel(row.run_id, args.reason, wait=args.wait, timeout=args.timeout)
                info = await client.get_run(row.run_id) if args.wait or not done else None
            return done, None if info is None else str(info.status)

        try:
            sent, final = asyncio.run(send())
        except TimeoutError as exc:
            raise CliError(str(exc)) from None
    if args.json:
        data: dict[str, object] = {"run_id": row.run_id, "status": str(row.status), "sent": sent}
        if args.wait:
            data["final_status"] = final or str(row.status)
        print(json.dumps(data))
    elif sent and args.wait:
        print(f"run {row.run_id} {_ended(final)} (cancellation sent, waited)")
    elif sent:
        print(f"cancellation of run {row.run_id} sent (it ends at its current await)")
    else:
        print(f"run {row.run_id} already finished ({final or row.status}): nothing to cancel")
    return 0


def _ended(status: str | None) -> str:
    if status == RunStatus.CANCELLED:
        return "cancelled"
    return f"finished {status} before the cancellation took effect"


def _lag(args: argparse.Namespace, settings: Settings) -> int:
    topic, group = Topics(settings.topic_prefix).history, f"{settings.topic_prefix}.materializer"
    lags = asyncio.run(committed_lag(settings.kafka_target(), topic, group))
    total = sum(p.lag for p in lags)
    if args.json:
        print(
            json.dumps(
                {"topic": topic, "group": group, "lag": total, "partitions": [asdict(p) for p in lags]}, indent=2
            )
        )
    else:
        rows = [
            [str(p.partition), str(p.end), "-" if p.committed is None else str(p.committed), str(p.lag)] for p in lags
        ]
        print(_ops.table(["PARTITION", "END", "MATERIALIZED", "LAG"], rows))
        print(f"{total} history records of {topic} not yet materialized by group {group}")
    return 0
