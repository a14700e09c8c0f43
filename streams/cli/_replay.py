"""``kflow replay ID -A mod`` and ``kflow replay --workflow NAME -A mod``: check workflow code against the
histories recorded in Cassandra (the check to run in CI before deploying changed workflow code)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from engine.runtime import SystemClock
from streams import ops as _ops
from streams._settings import Settings
from streams.cli._app import load_registry
from streams.cli._errors import EXIT_DIVERGED, EXIT_OK, UsageError
from streams.cli._runs import positive_int


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``replay`` to the ``kflow`` parser."""
    replay = groups.add_parser(
        "replay",
        help="re-run workflow code against recorded history; non-zero exit on divergence",
        description="Re-execute the workflow code of -A MODULE against recorded histories, without side "
        "effects. Exit 0 when every history replays deterministically, 3 when one does not.",
    )
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("run_id", nargs="?", metavar="ID", help="the run to replay")
    target.add_argument("--workflow", metavar="NAME", help="replay every recorded run of this workflow")
    target.add_argument(
        "--rebuild", action="store_true", help="re-materialize Cassandra from the Kafka history topic (idempotent)"
    )
    replay.add_argument(
        "--from",
        dest="from_",
        metavar="AGE|ISO",
        help="with --rebuild: only history records written since then (7d, or an ISO time)",
    )
    replay.add_argument("-A", "--app", metavar="MODULE", help="module defining the workflow code (required)")
    replay.add_argument(
        "--since",
        metavar="AGE|ISO",
        help="with --workflow: runs started within this duration "
        "(7d, 12h) or since this ISO date/time (UTC unless it says otherwise)",
    )
    replay.add_argument("--limit", type=positive_int, help="with --workflow: at most N runs, newest first")
    replay.add_argument(
        "--json", action="store_true", help="print only the outcomes and their summary (or the rebuild's report)"
    )
    replay.set_defaults(handler=_replay, usage_error=replay.error)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    if args.rebuild:
        return _rebuild(args, settings)
    if args.from_ is not None:
        args.usage_error("--from goes with --rebuild")
    if not args.app:
        args.usage_error("the following arguments are required: -A/--app")
    if args.run_id is not None and (args.since is not None or args.limit is not None):
        args.usage_error("--since and --limit go with --workflow, not with a run ID")
    if args.run_id is not None:
        return _replay_run(args, settings)
    return _replay_workflow(args, settings)


def _replay_run(args: argparse.Namespace, settings: Settings) -> int:
    registry = load_registry(args.app)
    with _ops.run_store(settings, registry.payload_types) as store:
        row = _ops.require_run(store, args.run_id, settings.keyspace)
        _ops.require_workflow(registry, args.app, row.workflow_name)
        outcome = _ops.replay_stored(store, registry, row.run_id)
    if args.json:
        print(json.dumps(outcome_json(outcome, row.workflow_name), indent=2))
    else:
        print(f"run {row.run_id} ({row.workflow_name}): {outcome.describe()}")
    return EXIT_OK if outcome.deterministic else EXIT_DIVERGED


def _replay_workflow(args: argparse.Namespace, settings: Settings) -> int:
    registry = load_registry(args.app)
    _ops.require_workflow(registry, args.app, args.workflow)
    since = None if args.since is None else _since(args.since, "--since")
    with _ops.run_store(settings, registry.payload_types) as store:
        rows = _ops.runs_of_workflow(store, args.workflow, since, args.limit)
        if not rows and not args.json:
            print(
                f"no recorded runs of workflow {args.workflow!r}"
                + ("" if since is None else f" since {_ops.format_time(since)} UTC")
            )
            return EXIT_OK
        progress = _Progress(len(rows))
        outcomes = _ops.replay_runs(store, registry, rows, progress.update)
    if args.json:
        print(json.dumps(replay_json(outcomes, args.workflow), indent=2))
    else:
        print(_ops.replay_summary(outcomes))
    return EXIT_OK if all(o.deterministic for o in outcomes) else EXIT_DIVERGED


def _since(text: str, flag: str) -> int:
    try:
        return _ops.parse_since(text, SystemClock().now_ms())
    except _ops.OpsError as exc:  # a bad argument value
        raise UsageError(str(exc).replace("--since", flag, 1)) from None


def outcome_json(outcome: _ops.ReplayOutcome, workflow: str) -> dict[str, object]:
    """One replayed run as JSON: the outcome's fields, its workflow and ``deterministic``."""
    return {"run_id": outcome.run_id, "workflow": workflow, "deterministic": outcome.deterministic} | {
        key: value for key, value in dataclasses.asdict(outcome).items() if key != "run_id"
    }


def replay_json(outcomes: list[_ops.ReplayOutcome], workflow: str) -> dict[str, object]:
    """``kflow replay --workflow NAME --json``: the summary counts and every run's outcome."""
    deterministic = sum(o.deterministic for o in outcomes)
    return {
        "workflow": workflow,
        "runs": len(outcomes),
        "deterministic": deterministic,
        "not_deterministic": len(outcomes) - deterministic,
        "outcomes": [outcome_json(o, workflow) for o in outcomes],
    }


def _rebuild(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from streams.ops import rebuild

    since = None if args.from_ is None else _since(args.from_, "--from")

    def progress(done: int, total: int) -> None:
        sys.stderr.write(f"rebuild {done:,}/{total:,} history records\n")

    report = asyncio.run(rebuild(settings, from_ms=since, progress=progress))
    if args.json:
        print(json.dumps({"keyspace": settings.keyspace, **dataclasses.asdict(report)}, indent=2))
        return EXIT_OK
    print(
        f"rebuilt keyspace {settings.keyspace} from {settings.topic_prefix}.history: {report.events:,} events "
        f"written from {report.partitions} partitions ({report.skipped} unreadable records skipped)"
    )
    return EXIT_OK


class _Progress:
    """A progress bar on stderr: redrawn in place on a terminal, else a line every tenth of the runs."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.failed = 0
        self.tty = sys.stderr.isatty()
        self.step = max(1, total // 10)

    def update(self, done: int, outcome: _ops.ReplayOutcome) -> None:
        """Count ``outcome`` and redraw (or print) the bar."""
        self.failed += not outcome.deterministic
        bar = replay_progress_bar(done, self.total, self.failed)
        if self.tty:
            sys.stderr.write(f"\r{bar}" + ("\n" if done == self.total else ""))
        elif done % self.step == 0 or done == self.total:
            sys.stderr.write(bar + "\n")
        sys.stderr.flush()


def replay_progress_bar(done: int, total: int, failed: int, width: int = 30) -> str:
    """``replay [#####.....] 12/40 runs, 1 diverged``."""
    filled = width if total == 0 else width * done // total
    return f"replay [{'#' * filled}{'.' * (width - filled)}] {done}/{total} runs, {failed} diverged"
