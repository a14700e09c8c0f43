"""``kflow schedules list|show|create|update|pause|resume|delete|trigger|backfill|activate``: recurring runs.

Commands are sent to the orchestrator through the client (``Client.*_schedule``) and wait for its answer;
listings read the state topic. Every refusal (bad cron, unknown time zone, unknown schedule, …) is one line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar
from zoneinfo import ZoneInfo

from aiokafka.errors import KafkaError

from engine import DEFAULT_CATCHUP_WINDOW, CalendarSpec, OverlapPolicy, ScheduleError, ScheduleSpec, ScheduleSpecError
from engine.runtime import ScheduleState
from streams._settings import Settings
from streams.cli._app import load_registry
from streams.ops import OpsError, format_time, table

if TYPE_CHECKING:
    from streams.client import Client

_T = TypeVar("_T")
_RESERVED = ("overlap", "note", "wait", "timeout")  # keyword parameters of Client.create_schedule
_POLICIES = ", ".join(policy.value for policy in OverlapPolicy)


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``schedules`` and its sub-commands to the ``kflow`` parser."""
    schedules = groups.add_parser("schedules", help="recurring runs: create, inspect, pause, trigger, backfill")
    commands = schedules.add_subparsers(title="schedules commands", metavar="COMMAND", parser_class=type(schedules))
    commands.required = True
    listing = commands.add_parser("list", help="every schedule, with its next fire")
    listing.add_argument("--workflow", metavar="NAME", help="only schedules starting this workflow")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_list)
    show = commands.add_parser("show", help="one schedule: next fire, counters, running and recent runs")
    show.add_argument("schedule_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=_show)
    create = commands.add_parser("create", help="create a schedule (fires start runs of --workflow)")
    create.add_argument("schedule_id", metavar="ID")
    create.add_argument("--workflow", metavar="NAME", required=True, help="the workflow each fire starts")
    _spec_arguments(create, required=True)
    _call_arguments(create)
    create.add_argument(
        "--overlap",
        type=_overlap,
        default="skip",
        help=f"when a fire finds a run still running: {_POLICIES} (default skip)",
    )
    create.set_defaults(handler=_create)
    update = commands.add_parser("update", help="change a schedule (what is not given is kept); re-arms from now")
    update.add_argument("schedule_id", metavar="ID")
    update.add_argument("--workflow", metavar="NAME", help="the workflow each fire starts")
    _spec_arguments(update, required=False)
    _call_arguments(update)
    update.add_argument("--overlap", type=_overlap, help=f"one of {_POLICIES}")
    update.set_defaults(handler=_update)
    for name, handler, text in (
        ("pause", _pause, "stop firing until resumed (running runs go on)"),
        ("resume", _resume, "fire again, from the next fire time after now"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("schedule_id", metavar="ID")
        command.add_argument("--note", help="why (replaces the schedule's note)")
        _timeout_argument(command)
        command.set_defaults(handler=handler)
    delete = commands.add_parser("delete", help="delete a schedule (runs it started that are running go on)")
    delete.add_argument("schedule_id", metavar="ID")
    _timeout_argument(delete)
    delete.set_defaults(handler=_delete)
    trigger = commands.add_parser("trigger", help="fire now (the overlap policy applies)")
    trigger.add_argument("schedule_id", metavar="ID")
    _timeout_argument(trigger)
    trigger.set_defaults(handler=_trigger)
    backfill = commands.add_parser("backfill", help="fire every fire time in [--start, --end) now (at most 1000)")
    backfill.add_argument("schedule_id", metavar="ID")
    backfill.add_argument("--start", type=instant, required=True, metavar="ISO", help="first time included")
    backfill.add_argument("--end", type=instant, required=True, metavar="ISO", help="first time excluded")
    _timeout_argument(backfill)
    backfill.set_defaults(handler=_backfill)
    activate = commands.add_parser("activate", help="create or update the schedules declared in code, as declared")
    activate.add_argument(
        "-A",
        "--app",
        required=True,
        metavar="MODULE",
        help="module whose @scheduled_workflow functions declare the schedules",
    )
    _timeout_argument(activate)
    activate.set_defaults(handler=_activate)


def _spec_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
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
    parser.add_argument("--start-at", type=instant, metavar="ISO", help="no fire before (ISO 8601; naive = UTC)")
    parser.add_argument("--end-at", type=instant, metavar="ISO", help="no fire after (ISO 8601; naive = UTC)")


def _call_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--args", type=_json_list, metavar="JSON", help="positional arguments, a JSON list")
    parser.add_argument("--kwargs", type=_json_object, metavar="JSON", help="keyword arguments, a JSON object")
    parser.add_argument("--note", help="a note kept with the schedule")
    _timeout_argument(parser)


def _timeout_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the orchestrator (default 30)")


# --- argument types: a bad value is a one-line usage error -------------------------------------------


def instant(text: str) -> int:
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


def _overlap(text: str) -> str:
    try:
        return OverlapPolicy(text).value
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown overlap policy {text!r} (one of {_POLICIES})") from None


# --- commands --------------------------------------------------------------------------------------


def _call(settings: Settings, action: Callable[[Client], Awaitable[_T]]) -> _T:
    """Run ``action(client)`` with a connected client; Kafka trouble and timeouts become one line."""
    from streams.cli._main import CliError  # here: _main imports this module
    from streams.client import Client

    async def go() -> _T:
        client = Client(settings=settings)  # connects on first use: local checks fail before that
        try:
            return await action(client)
        finally:
            await client.close()

    logging.getLogger("aiokafka").addHandler(logging.NullHandler())  # failures are reported as one line
    try:
        return asyncio.run(go())
    except TimeoutError as exc:
        raise CliError(str(exc) or "timed out") from None
    except (KafkaError, OSError) as exc:
        raise OpsError(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from None


def _list(args: argparse.Namespace, settings: Settings) -> int:
    states: list[ScheduleState] = _call(settings, lambda client: client.schedules.list(args.workflow))
    if args.json:
        print(json.dumps([state_json(state) for state in states], indent=2, default=repr))
    else:
        print(schedules_table(states) if states else "no schedules")
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    state = _require(_call(settings, lambda client: client.schedules.get(args.schedule_id)), args.schedule_id)
    print(json.dumps(state_json(state), indent=2, default=repr) if args.json else show_text(state))
    return 0


def _create(args: argparse.Namespace, settings: Settings) -> int:
    from streams.cli._main import CliError

    reserved = sorted(set(args.kwargs or {}) & set(_RESERVED))
    if reserved:
        raise CliError(
            f"--kwargs {', '.join(map(repr, reserved))} cannot be given to create: create the schedule "
            "without, then set them with kflow schedules update ID --args ... --kwargs ..."
        )
    spec = ScheduleSpec(
        cron=args.cron,
        interval=args.interval,
        calendar=args.calendar,
        timezone=args.timezone or "UTC",
        start_at=args.start_at,
        end_at=args.end_at,
        jitter=args.jitter,
        catchup_window=DEFAULT_CATCHUP_WINDOW if args.catchup_window is None else args.catchup_window,
    )
    state = _call(
        settings,
        lambda client: client.schedules.create(
            args.schedule_id,
            args.workflow,
            spec,
            *(args.args or ()),
            overlap=args.overlap,
            note=args.note,
            timeout=args.timeout,
            **(args.kwargs or {}),
        ),
    )
    print(f"schedule {state.schedule_id} created: {_armed(state)}")
    return 0


def _update(args: argparse.Namespace, settings: Settings) -> int:
    from streams.cli._main import CliError

    spec_flags = (
        args.cron,
        args.interval,
        args.calendar,
        args.timezone,
        args.jitter,
        args.catchup_window,
        args.start_at,
        args.end_at,
    )
    if all(value is None for value in (args.workflow, args.args, args.kwargs, args.overlap, args.note, *spec_flags)):
        raise CliError("nothing to update: give --workflow, a spec option, --args/--kwargs, --overlap or --note")

    async def update(client: Client) -> ScheduleState:
        spec = None
        if any(value is not None for value in spec_flags):
            current = _require(await client.schedules.get(args.schedule_id), args.schedule_id)
            spec = updated_spec(ScheduleSpec.from_wire(json.loads(current.spec)), args)
        return await client.schedules.update(
            args.schedule_id,
            workflow=args.workflow,
            spec=spec,
            args=None if args.args is None and args.kwargs is None else tuple(args.args or ()),
            kwargs=args.kwargs,
            overlap=args.overlap,
            note=args.note,
            timeout=args.timeout,
        )

    state = _call(settings, update)
    print(f"schedule {state.schedule_id} updated: {_armed(state)}")
    return 0


def _pause(args: argparse.Namespace, settings: Settings) -> int:
    state = _call(settings, lambda client: client.schedules.pause(args.schedule_id, args.note, timeout=args.timeout))
    print(f"schedule {state.schedule_id} paused (runs already started go on)")
    return 0


def _resume(args: argparse.Namespace, settings: Settings) -> int:
    state = _call(settings, lambda client: client.schedules.resume(args.schedule_id, args.note, timeout=args.timeout))
    print(f"schedule {state.schedule_id} resumed: {_armed(state)}")
    return 0


def _delete(args: argparse.Namespace, settings: Settings) -> int:
    _call(settings, lambda client: client.schedules.delete(args.schedule_id, timeout=args.timeout))
    print(f"schedule {args.schedule_id} deleted (runs it started that are still running go on)")
    return 0


def _trigger(args: argparse.Namespace, settings: Settings) -> int:
    run_id = _call(settings, lambda client: client.schedules.trigger(args.schedule_id, timeout=args.timeout))
    print(
        f"schedule {args.schedule_id} fired: run {run_id} (unless the overlap policy skipped or buffered it: "
        f"see kflow schedules show {args.schedule_id})"
    )
    return 0


def _backfill(args: argparse.Namespace, settings: Settings) -> int:
    run_ids: list[str] = _call(
        settings, lambda client: client.schedules.backfill(args.schedule_id, args.start, args.end, timeout=args.timeout)
    )
    print(
        f"schedule {args.schedule_id} backfilled {len(run_ids)} fire(s) in [{format_time(args.start)}, "
        f"{format_time(args.end)}) UTC (the overlap policy applies to each)"
    )
    for run_id in run_ids:
        print(f"  {run_id}")
    return 0


def _activate(args: argparse.Namespace, settings: Settings) -> int:
    from streams.cli._main import CliError

    declared = list(load_registry(args.app).schedules.values())
    if not declared:
        raise CliError(f"-A {args.app} declares no schedules (decorate its workflows with @scheduled_workflow)")

    async def go(client: Client) -> None:
        for each in declared:  # one by one, each reported as it is done: an error stops at that schedule
            done = await client.schedules.activate_declared(each, timeout=args.timeout)
            print(f"schedule {done.schedule_id} {done.outcome}: {_armed(done.state)}", flush=True)

    _call(settings, go)
    return 0


def _require(state: ScheduleState | None, schedule_id: str) -> ScheduleState:
    if state is None:
        raise ScheduleError(f"no schedule {schedule_id!r}")
    return state


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


# --- output --------------------------------------------------------------------------------------------


def status(state: ScheduleState) -> str:
    """``paused``, ``active`` (a fire is armed) or ``spent`` (no fire left before the spec's ``end_at``)."""
    if state.paused:
        return "paused"
    return "active" if state.next_fire_at is not None else "spent"


def describe_spec(spec: ScheduleSpec) -> str:
    """One line for people: ``cron 0 9 * * 1-5 (Europe/Paris)``, ``every 5m``, ``calendar (2 entries)``."""
    if spec.cron is not None:
        text = f"cron {spec.cron}"
    elif isinstance(spec.interval, timedelta):  # normalised to a timedelta by ScheduleSpec
        text = f"every {_duration(spec.interval)}"
    else:
        text = f"calendar ({len(spec.calendar or ())} entr{'y' if len(spec.calendar or ()) == 1 else 'ies'})"
    if spec.timezone != "UTC" and spec.interval is None:
        text += f" ({spec.timezone})"
    if isinstance(spec.jitter, timedelta) and spec.jitter:
        text += f", jitter {_duration(spec.jitter)}"
    window = timedelta(milliseconds=spec.catchup_window_ms)
    if window != DEFAULT_CATCHUP_WINDOW:
        text += f", catch-up {_duration(window) if window else 'off'}"
    if spec.start_at is not None:
        text += f", from {format_time(spec.start_at)} UTC"
    if spec.end_at is not None:
        text += f", until {format_time(spec.end_at)} UTC"
    return text


def _duration(value: timedelta) -> str:
    ms = value // timedelta(milliseconds=1)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts) or "0s"


def _spec(state: ScheduleState) -> ScheduleSpec:
    return ScheduleSpec.from_wire(json.loads(state.spec))


def fire_time(ms: int | None, zone: str) -> str:
    """A fire time in UTC, and on the wall clock of ``zone`` too when that is not UTC."""
    if ms is None:
        return "-"
    utc = f"{format_time(ms)} UTC"
    if zone == "UTC":
        return utc
    local = datetime.fromtimestamp(ms / 1000, tz=ZoneInfo(zone))
    return (
        f"{utc} = {local.strftime('%Y-%m-%d %H:%M:%S')} {zone} ({local.strftime('%z')[:3]}:{local.strftime('%z')[3:]})"
    )


def _armed(state: ScheduleState) -> str:
    if state.paused:
        return "paused (no fire until resumed)"
    if state.next_fire_at is None:
        return "no fire left (past its end)"
    return f"next fire {fire_time(state.next_fire_at, _spec(state).timezone)}"


def schedules_table(states: list[ScheduleState]) -> str:
    """The ``kflow schedules list`` table."""
    rows = [
        [
            s.schedule_id,
            s.workflow_name,
            describe_spec(_spec(s)),
            status(s),
            fire_time(s.next_fire_at, "UTC"),
            s.overlap,
            str(len(s.running)),
            str(s.fires),
            str(s.skipped),
        ]
        for s in states
    ]
    return table(["ID", "WORKFLOW", "WHEN", "STATUS", "NEXT FIRE", "OVERLAP", "RUNNING", "FIRES", "SKIPPED"], rows)


def show_text(state: ScheduleState) -> str:
    """The ``kflow schedules show`` text."""
    spec = _spec(state)
    call = json.dumps({"args": list(state.args.args), "kwargs": state.args.kwargs}, default=repr)
    lines = [
        ("schedule", state.schedule_id),
        ("workflow", f"{state.workflow_name} {call}"),
        ("when", describe_spec(spec)),
        ("status", status(state)),
        ("next fire", fire_time(state.next_fire_at, spec.timezone)),
        ("overlap", state.overlap),
        ("note", state.note or "-"),
        ("running", ", ".join(state.running) or "-"),
        ("buffered", ", ".join(f"{format_time(t)} UTC" for t in state.buffered) or "-"),
        ("fires", f"{state.fires} started, {state.skipped} skipped"),
        ("last fire", fire_time(state.last_fire_at, spec.timezone)),
        ("created", f"{format_time(state.created_at)} UTC, updated {format_time(state.updated_at)} UTC"),
        ("recent runs", f"{len(state.recent_runs)}, newest first" if state.recent_runs else "-"),
    ]
    width = max(len(label) for label, _ in lines)
    text = [f"{label.ljust(width)}  {value}" for label, value in lines]
    text.extend(f"  {run_id}" for run_id in reversed(state.recent_runs))
    return "\n".join(text)


def state_json(state: ScheduleState) -> dict[str, object]:
    """A schedule's state as JSON-ready data: the record's fields, the spec as an object, and ``status``."""
    return {
        "schedule_id": state.schedule_id,
        "workflow_name": state.workflow_name,
        "args": {"args": list(state.args.args), "kwargs": state.args.kwargs},
        "spec": json.loads(state.spec),
        "overlap": state.overlap,
        "status": status(state),
        "paused": state.paused,
        "note": state.note,
        "next_fire_at": state.next_fire_at,
        "last_fire_at": state.last_fire_at,
        "running": list(state.running),
        "buffered": list(state.buffered),
        "fires": state.fires,
        "skipped": state.skipped,
        "recent_runs": list(state.recent_runs),
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "generation": state.generation,
    }
