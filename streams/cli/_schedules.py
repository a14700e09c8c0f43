"""``kflow schedules list|show|create|update|pause|resume|delete|trigger|backfill|activate``: recurring runs.

Commands are sent to the orchestrator through the client (``Client.schedules``) and wait for its answer;
listings read the state topic. Every refusal (bad cron, unknown time zone, unknown schedule, …) is one line.
Arguments are in ``_schedule_args``, what is printed in ``_schedule_text``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from aiokafka.errors import KafkaError

from engine import DEFAULT_CATCHUP_WINDOW, ScheduleError, ScheduleSpec, ScheduleSpecError
from engine.runtime import ScheduleState
from streams._errors import TransportError
from streams._settings import Settings
from streams.cli._app import load_registry
from streams.cli._errors import CliError, UsageError
from streams.cli._schedule_args import (
    POLICIES,
    RESERVED,
    call_arguments,
    overlap_policy,
    parse_instant,
    spec_arguments,
    updated_spec,
    wait_arguments,
)
from streams.cli._schedule_text import armed_text, schedule_json, schedule_text, schedules_table
from streams.ops import format_time

if TYPE_CHECKING:
    from streams.client import Client

_T = TypeVar("_T")


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
    spec_arguments(create, required=True)
    call_arguments(create)
    create.add_argument(
        "--overlap",
        type=overlap_policy,
        default="skip",
        help=f"when a fire finds a run still running: {POLICIES} (default skip)",
    )
    create.set_defaults(handler=_create)
    update = commands.add_parser("update", help="change a schedule (what is not given is kept); re-arms from now")
    update.add_argument("schedule_id", metavar="ID")
    update.add_argument("--workflow", metavar="NAME", help="the workflow each fire starts")
    spec_arguments(update, required=False)
    call_arguments(update)
    update.add_argument("--overlap", type=overlap_policy, help=f"one of {POLICIES}")
    update.set_defaults(handler=_update)
    for name, handler, text in (
        ("pause", _pause, "stop firing until resumed (running runs go on)"),
        ("resume", _resume, "fire again, from the next fire time after now"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("schedule_id", metavar="ID")
        command.add_argument("--note", help="why (replaces the schedule's note)")
        wait_arguments(command)
        command.set_defaults(handler=handler)
    delete = commands.add_parser("delete", help="delete a schedule (runs it started that are running go on)")
    delete.add_argument("schedule_id", metavar="ID")
    wait_arguments(delete)
    delete.set_defaults(handler=_delete)
    trigger = commands.add_parser("trigger", help="fire now (the overlap policy applies)")
    trigger.add_argument("schedule_id", metavar="ID")
    wait_arguments(trigger)
    trigger.set_defaults(handler=_trigger)
    backfill = commands.add_parser("backfill", help="fire every fire time in [--start, --end) now (at most 1000)")
    backfill.add_argument("schedule_id", metavar="ID")
    backfill.add_argument("--start", type=parse_instant, required=True, metavar="ISO", help="first time included")
    backfill.add_argument("--end", type=parse_instant, required=True, metavar="ISO", help="first time excluded")
    wait_arguments(backfill)
    backfill.set_defaults(handler=_backfill)
    activate = commands.add_parser("activate", help="create or update the schedules declared in code, as declared")
    activate.add_argument(
        "-A",
        "--app",
        required=True,
        metavar="MODULE",
        help="module whose @scheduled_workflow functions declare the schedules",
    )
    wait_arguments(activate)
    activate.set_defaults(handler=_activate)


def _call(settings: Settings, action: Callable[[Client], Awaitable[_T]]) -> _T:
    """Run ``action(client)`` with a client (it connects on first use); timeouts and Kafka trouble become one
    line (a ``CliError``, a ``TransportError``)."""
    from streams.client import Client

    async def go() -> _T:
        client = Client(settings=settings)  # connects on first use: local checks fail before that
        try:
            return await action(client)
        finally:
            await client.close()

    try:
        return asyncio.run(go())
    except TimeoutError as exc:
        raise CliError(str(exc) or "timed out") from None
    except (KafkaError, OSError) as exc:  # a send after connecting: the client wraps what it meets itself
        raise TransportError.wrapping(exc, settings.kafka_target(), "sending the schedule command") from exc


def _print(args: argparse.Namespace, data: object, text: str) -> None:
    """``data`` as JSON with ``--json``, else ``text``."""
    print(json.dumps(data, indent=2, default=repr) if args.json else text)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    states: list[ScheduleState] = _call(settings, lambda client: client.schedules.list(args.workflow))
    _print(args, [schedule_json(state) for state in states], schedules_table(states) if states else "no schedules")
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    state = _require(_call(settings, lambda client: client.schedules.get(args.schedule_id)), args.schedule_id)
    _print(args, schedule_json(state), schedule_text(state))
    return 0


def _create(args: argparse.Namespace, settings: Settings) -> int:
    reserved = sorted(set(args.kwargs or {}) & set(RESERVED))
    if reserved:
        raise UsageError(
            f"--kwargs {', '.join(map(repr, reserved))} cannot be given to create: create the schedule "
            "without, then set them with kflow schedules update ID --args ... --kwargs ..."
        )
    try:
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
    except ScheduleSpecError as exc:  # a bad option value
        raise UsageError(str(exc)) from None
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
    _print(args, schedule_json(state), f"schedule {state.schedule_id} created: {armed_text(state)}")
    return 0


def _update(args: argparse.Namespace, settings: Settings) -> int:
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
        raise UsageError("nothing to update: give --workflow, a spec option, --args/--kwargs, --overlap or --note")

    async def update(client: Client) -> ScheduleState:
        spec = None
        if any(value is not None for value in spec_flags):
            current = _require(await client.schedules.get(args.schedule_id), args.schedule_id)
            try:
                spec = updated_spec(ScheduleSpec.from_wire(json.loads(current.spec)), args)
            except ScheduleSpecError as exc:  # a bad option value (with the schedule's other settings)
                raise UsageError(str(exc)) from None
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
    _print(args, schedule_json(state), f"schedule {state.schedule_id} updated: {armed_text(state)}")
    return 0


def _pause(args: argparse.Namespace, settings: Settings) -> int:
    state = _call(settings, lambda client: client.schedules.pause(args.schedule_id, args.note, timeout=args.timeout))
    _print(args, schedule_json(state), f"schedule {state.schedule_id} paused (runs already started go on)")
    return 0


def _resume(args: argparse.Namespace, settings: Settings) -> int:
    state = _call(settings, lambda client: client.schedules.resume(args.schedule_id, args.note, timeout=args.timeout))
    _print(args, schedule_json(state), f"schedule {state.schedule_id} resumed: {armed_text(state)}")
    return 0


def _delete(args: argparse.Namespace, settings: Settings) -> int:
    _call(settings, lambda client: client.schedules.delete(args.schedule_id, timeout=args.timeout))
    _print(
        args,
        {"schedule_id": args.schedule_id, "deleted": True},
        f"schedule {args.schedule_id} deleted (runs it started that are still running go on)",
    )
    return 0


def _trigger(args: argparse.Namespace, settings: Settings) -> int:
    run_id = _call(settings, lambda client: client.schedules.trigger(args.schedule_id, timeout=args.timeout))
    _print(
        args,
        {"schedule_id": args.schedule_id, "run_id": run_id},
        f"schedule {args.schedule_id} fired: run {run_id} (unless the overlap policy skipped or buffered it: "
        f"see kflow schedules show {args.schedule_id})",
    )
    return 0


def _backfill(args: argparse.Namespace, settings: Settings) -> int:
    if args.start >= args.end:
        raise UsageError(f"backfill needs start < end, got [{format_time(args.start)}, {format_time(args.end)}) UTC")
    run_ids: list[str] = _call(
        settings, lambda client: client.schedules.backfill(args.schedule_id, args.start, args.end, timeout=args.timeout)
    )
    _print(
        args,
        {"schedule_id": args.schedule_id, "start": args.start, "end": args.end, "run_ids": run_ids},
        "\n".join(
            [
                f"schedule {args.schedule_id} backfilled {len(run_ids)} fire(s) in [{format_time(args.start)}, "
                f"{format_time(args.end)}) UTC (the overlap policy applies to each)",
                *(f"  {run_id}" for run_id in run_ids),
            ]
        ),
    )
    return 0


def _activate(args: argparse.Namespace, settings: Settings) -> int:
    declared = list(load_registry(args.app).schedules.values())
    if not declared:
        raise CliError(f"-A {args.app} declares no schedules (decorate its workflows with @scheduled_workflow)")
    done: list[dict[str, object]] = []

    async def go(client: Client) -> None:
        for each in declared:  # one by one, each reported as it is done: an error stops at that schedule
            activation = await client.schedules.activate_declared(each, timeout=args.timeout)
            done.append(
                {"schedule_id": activation.schedule_id, "outcome": activation.outcome}
                | {"schedule": schedule_json(activation.state)}
            )
            if not args.json:
                print(
                    f"schedule {activation.schedule_id} {activation.outcome}: {armed_text(activation.state)}",
                    flush=True,
                )

    _call(settings, go)
    if args.json:
        print(json.dumps(done, indent=2, default=repr))
    return 0


def _require(state: ScheduleState | None, schedule_id: str) -> ScheduleState:
    if state is None:
        raise ScheduleError(f"no schedule {schedule_id!r}")
    return state
