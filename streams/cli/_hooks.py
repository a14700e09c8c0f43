"""``kflow hooks resume TOKEN JSON``: deliver a payload to a workflow waiting on a hook."""

from __future__ import annotations

import argparse
import asyncio
import json

from streams._settings import Settings
from streams.cli._errors import CliError


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
