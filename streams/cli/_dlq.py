"""``kflow dlq list|show|redrive``: the dead letters of ``<prefix>.dlq``, one in full, and redriving them to the
inbox after a fix (docs/api.md, "Dead letters")."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from engine.runtime import SystemClock
from streams import ops as _ops
from streams._settings import Settings
from streams._topics import Topics
from streams.cli._errors import UsageError
from streams.cli._runs import positive_int

_FILTER_HELP = (
    "only dead letters matching FILTER: type=RECORD_TYPE (e.g. type=StartWorkflow), reason=TEXT, run=TEXT, "
    "topic=TEXT, error=TEXT, or TEXT alone (any of them); case-insensitive; repeat to require several"
)


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dlq`` and its sub-commands to the ``kflow`` parser."""
    dlq = groups.add_parser("dlq", help="dead letters: list, show one, redrive to the inbox after a fix")
    commands = dlq.add_subparsers(title="dlq commands", metavar="COMMAND", parser_class=type(dlq))
    commands.required = True
    listing = commands.add_parser(
        "list", help="one line per dead letter: address, when, where from, record type, key, redrive, reason"
    )
    listing.add_argument("--since", metavar="AGE|ISO", help="only those that failed since (7d, 12h, 2024-05-01T12:00)")
    listing.add_argument("--filter", action="append", default=[], metavar="FILTER", help=_FILTER_HELP)
    listing.add_argument("--limit", type=positive_int, default=100, help="the newest N (default 100)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_list)
    show = commands.add_parser("show", help="one dead letter in full, with its original record decoded")
    show.add_argument("address", metavar="PARTITION:OFFSET", help="its place on the dlq (OFFSET alone: one partition)")
    show.add_argument("--json", action="store_true", help="machine-readable output (with the original bytes, base64)")
    show.set_defaults(handler=_show)
    redrive = commands.add_parser(
        "redrive",
        help="re-produce dead-lettered inbox records to the inbox (after a fix); each dead letter once",
        description="Re-produce every matching dead letter read from <prefix>.inbox to the inbox partition of its "
        "key, with its original key and bytes, and mark it redriven on the dlq in the same transaction: "
        "redriving again skips it. Dead letters from .tasks or .timers, without a key, or starting a "
        "child run (its parent already heard it failed) are skipped, with the reason.",
    )
    redrive.add_argument("--filter", action="append", default=[], metavar="FILTER", help=_FILTER_HELP)
    redrive.add_argument("--since", metavar="AGE|ISO", help="only those that failed since (7d, 12h, ISO)")
    redrive.add_argument("--dry-run", action="store_true", help="say what would be redriven, send nothing")
    redrive.add_argument("--json", action="store_true", help="machine-readable output")
    redrive.set_defaults(handler=_redrive)


def _since(args: argparse.Namespace) -> int | None:
    if args.since is None:
        return None
    try:
        return _ops.parse_since(args.since, SystemClock().now_ms())
    except _ops.OpsError as exc:
        raise UsageError(str(exc)) from None


def _filters(args: argparse.Namespace) -> list[_ops.DlqFilter]:
    filters = [_ops.parse_filter(text) for text in args.filter]
    empty = next((text for text, f in zip(args.filter, filters, strict=True) if not f.text), None)
    if empty is not None:
        raise UsageError(f"--filter {empty!r}: nothing to match")
    return filters


def _list(args: argparse.Namespace, settings: Settings) -> int:
    since, filters = _since(args), _filters(args)
    contents = asyncio.run(_ops.read_dead_letters(settings, since_ms=since))
    matching = [letter for letter in contents.letters if all(f.matches(letter) for f in filters)]
    shown = matching[-args.limit :]
    if args.json:
        print(json.dumps([_ops.letter_json(letter) for letter in shown], indent=2))
    else:
        print(_ops.dlq_table(shown))
    if len(matching) > len(shown):
        print(f"({len(matching) - len(shown)} older not shown: --limit, --since)", file=sys.stderr)
    if contents.unreadable:
        print(f"({contents.unreadable} record(s) on the dlq are not DeadLetter records)", file=sys.stderr)
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    async def find() -> _ops.DeadLetterView:
        partitions = await _ops.topic_partitions(settings.kafka_target(), Topics(settings.topic_prefix).dlq)
        try:
            address = _ops.parse_address(args.address, partitions)
        except _ops.OpsError as exc:
            raise UsageError(str(exc)) from None
        return await _ops.find_dead_letter(settings, address)

    letter = asyncio.run(find())
    print(json.dumps(_ops.dlq_show_json(letter), indent=2) if args.json else _ops.dlq_show_text(letter))
    return 0


def _redrive(args: argparse.Namespace, settings: Settings) -> int:
    since, filters = _since(args), _filters(args)
    now = SystemClock().now_ms()
    report = asyncio.run(_ops.redrive(settings, filters, since_ms=since, dry_run=args.dry_run, now_ms=now))
    if args.json:
        print(json.dumps(redrive_json(report), indent=2))
        return 0
    verb = "would redrive" if report.dry_run else "redriven"
    for letter, to in report.redriven:
        print(f"{verb}  {letter.address}  {letter.record_type}  {letter.run_id}  -> {to}")
    for letter, why in report.skipped:
        print(f"skipped  {letter.address}  {letter.record_type}  {letter.run_id}: {why}")
    if not report.redriven and not report.skipped:
        print("no dead letter matches")
    else:
        print(f"{verb}: {len(report.redriven)}, skipped: {len(report.skipped)}")
    return 0


def redrive_json(report: _ops.RedriveReport) -> dict[str, object]:
    """``kflow dlq redrive --json``: ``{dry_run, redriven: [{address, …, to}], skipped: [{address, …, why}]}``."""
    return {
        "dry_run": report.dry_run,
        "redriven": [{**_ops.letter_json(letter), "to": to} for letter, to in report.redriven],
        "skipped": [{**_ops.letter_json(letter), "why": why} for letter, why in report.skipped],
    }
