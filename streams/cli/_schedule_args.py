"""The arguments of ``kflow schedules`` commands: option groups, and argument types whose bad values are
one-line usage errors."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

from engine import CalendarSpec, OverlapPolicy, ScheduleSpec, ScheduleSpecError

RESERVED = ("overlap", "note", "wait", "timeout")
"""Keyword parameters of ``Client.schedules.create``: not passable through ``--kwargs``."""
POLICIES = ", ".join(policy.value for policy in OverlapPolicy)
"""The overlap policies, for help and error texts."""


def spec_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """Add the schedule spec options: one of ``--cron``, ``--interval``, ``--calendar`` (``required`` or not),
    then time zone, jitter, catch-up window and bounds."""
    kind = parser.add_mutually_exclusive_group(required=required)
    kind.add_argument("--cron", metavar="EXPR", help='5-field cron line or @macro, e.g. "0 9 * * 1-5"')
    kind.add_argument("--interval", metavar="DURATION", help="fixed interval, e.g. 30s, 5m, 1h30m (whole seconds)")
    kind.add_argument(
        "--calendar",
        type=_calendar,
        metavar="JSON",
        help='calendar entries, e.g. \'[{"day_of_month": 1, "hour": 9}]\' (one object or a list)',
    )
    parser.add_argument("--timezone", metavar="TZ", help="IANA zone whose wall clock cron/calendar match (default UTC)")
    parser.add_argument("--jitter", metavar="DURATION", help="each fire is delayed by a stable amount below this")
    parser.add_argument(
        "--catchup-window",
        metavar="DURATION",
        help="missed fires due less than this long ago still fire (default 1m; 0s: only the first)",
    )
    parser.add_argument("--start-at", type=parse_instant, metavar="ISO", help="no fire before (ISO 8601; naive = UTC)")
    parser.add_argument("--end-at", type=parse_instant, metavar="ISO", help="no fire after (ISO 8601; naive = UTC)")


def call_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--args``, ``--kwargs``, ``--note`` and the wait options (``create`` and ``update``)."""
    parser.add_argument("--args", type=_json_list, metavar="JSON", help="positional arguments, a JSON list")
    parser.add_argument("--kwargs", type=_json_object, metavar="JSON", help="keyword arguments, a JSON object")
    parser.add_argument("--note", help="a note kept with the schedule")
    wait_arguments(parser)


def wait_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--timeout`` and ``--json`` to a command that changes a schedule and waits for the orchestrator."""
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the orchestrator (default 30)")
    parser.add_argument("--json", action="store_true", help="print only the outcome as JSON")


# --- argument types: a bad value is a one-line usage error -------------------------------------------


def parse_instant(text: str) -> int:
    """Argparse type of times: ISO 8601 (a naive one is UTC) as epoch milliseconds."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r} (e.g. 2025-01-31T09:00:00+01:00)") from None
    if value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def _json_list(text: str) -> list[object]:
    value = _json(text)
    if not isinstance(value, list):
        raise argparse.ArgumentTypeError(f"expected a JSON list, got {text!r}")
    return value


def _json_object(text: str) -> dict[str, object]:
    value = _json(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _calendar(text: str) -> tuple[CalendarSpec, ...]:
    value = _json(text)
    entries = value if isinstance(value, list) else [value]
    try:
        spec = ScheduleSpec.from_wire({"calendar": entries})
    except ScheduleSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    assert spec.calendar is not None
    return spec.calendar


def overlap_policy(text: str) -> str:
    """Argparse type of ``--overlap``: an ``OverlapPolicy`` value."""
    try:
        return OverlapPolicy(text).value
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown overlap policy {text!r} (one of {POLICIES})") from None


def updated_spec(current: ScheduleSpec, args: argparse.Namespace) -> ScheduleSpec:
    """``current`` with the spec options given on the command line (a new cron/interval/calendar replaces
    the old kind; time zone, jitter, catch-up window and bounds are kept unless given)."""
    new_kind = any(value is not None for value in (args.cron, args.interval, args.calendar))
    return ScheduleSpec(
        cron=args.cron if new_kind else current.cron,
        interval=args.interval if new_kind else current.interval,
        calendar=args.calendar if new_kind else current.calendar,
        timezone=current.timezone if args.timezone is None else args.timezone,
        start_at=current.start_at if args.start_at is None else args.start_at,
        end_at=current.end_at if args.end_at is None else args.end_at,
        jitter=current.jitter if args.jitter is None else args.jitter,
        catchup_window=current.catchup_window if args.catchup_window is None else args.catchup_window,
    )
