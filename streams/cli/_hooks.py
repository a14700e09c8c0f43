"""``kflow hooks resume TOKEN JSON``: deliver a payload to a workflow waiting on a hook; ``kflow hooks list`` and
``kflow hooks info TOKEN``: the hooks of runs, from their histories in Cassandra."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from streams import ops as _ops
from streams._settings import Settings
from streams.cli._errors import CliError, UsageError
from streams.cli._runs import positive_int


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``hooks`` and its sub-commands to the ``kflow`` parser."""
    hooks = groups.add_parser("hooks", help="external events for waiting workflows")
    commands = hooks.add_subparsers(title="hooks commands", metavar="COMMAND", parser_class=type(hooks))
    commands.required = True
    resume = commands.add_parser("resume", help="send a payload to the hook waiting on TOKEN")
    resume.add_argument("token", metavar="TOKEN", help='"<run_id>:<hook name>" (or the token on_created gave)')
    resume.add_argument("payload", metavar="JSON", type=_json, help="the payload, as JSON")
    resume.add_argument(
        "--no-wait",
        action="store_true",
        help="return once Kafka has the payload, without waiting to learn whether it was delivered",
    )
    resume.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer (default 30)")
    resume.add_argument("--json", action="store_true", help="print only {token, outcome} as JSON")
    resume.set_defaults(handler=_resume)
    listing = commands.add_parser("list", help="hooks of a run, or of the running runs, from their histories")
    listing.add_argument("--run", metavar="ID", help="the hooks of this run (any status); default: of running runs")
    listing.add_argument("--status", choices=_ops.HOOK_STATUSES, help="only hooks in this status")
    listing.add_argument("--limit", type=positive_int, default=50, help="most hooks listed (default 50)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_list)
    info = commands.add_parser("info", help="one hook: its status, times and payload")
    info.add_argument("token", metavar="TOKEN", help='"<run_id>:<hook name>" (or "<run_id>:<name>#N")')
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(handler=_info)


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def _resume(args: argparse.Namespace, settings: Settings) -> int:
    """Print what became of the payload; a refused one is a ``HookDeliveryError`` (one line, exit 1)."""
    from streams.client import Client

    async def send() -> str:
        client = Client(settings=settings)  # connects on first use: a malformed token fails before that
        try:
            return await client.resume_hook(args.token, args.payload, wait=not args.no_wait, timeout=args.timeout)
        finally:
            await client.close()

    try:
        outcome = asyncio.run(send())
    except TimeoutError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps({"token": args.token, "outcome": outcome}))
    else:
        print(describe_hook_outcome(outcome, args.token))
    return 0


def describe_hook_outcome(outcome: str, token: str) -> str:
    """The line ``kflow hooks resume`` prints for ``Client.resume_hook``'s ``outcome``."""
    if outcome == "queued":
        return f"queued (no hook is waiting on {token} yet; it is delivered when the workflow reaches it)"
    if outcome == "sent":
        return "sent (--no-wait: not waiting to learn whether it was delivered)"
    return outcome


def _list(args: argparse.Namespace, settings: Settings) -> int:
    with _ops.run_store(settings) as store:
        if args.run is not None:
            row = _ops.require_run(store, args.run, settings.keyspace)
            hooks = _ops.hooks_of(row.run_id, store.events(row.run_id), row.status)
            hooks = [hook for hook in hooks if args.status is None or hook.status == args.status][: args.limit]
            note = None
        else:
            found = _ops.hooks_of_running_runs(store, args.status, args.limit)
            hooks = found.hooks
            note = f"read the hooks of {found.runs} running runs" + (
                " (stopped there: --run ID lists one run's)" if found.more else ""
            )
    if args.json:
        print(json.dumps([_ops.hook_json(hook) for hook in hooks], indent=2, default=repr))
    else:
        print(_ops.hooks_table(hooks))
    if note:
        print(note, file=sys.stderr)
    return 0


def _info(args: argparse.Namespace, settings: Settings) -> int:
    from streams.client import run_id_of_token

    try:
        run_id = run_id_of_token(args.token)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with _ops.run_store(settings) as store:
        row = _ops.require_run(store, run_id, settings.keyspace)
        hook = _ops.find_hook(_ops.hooks_of(run_id, store.events(run_id), row.status), args.token)
    if args.json:
        print(json.dumps(_ops.hook_json(hook) | {"run_status": row.status}, indent=2, default=repr))
    else:
        print(_ops.hook_text(hook, row.status))
    return 0
