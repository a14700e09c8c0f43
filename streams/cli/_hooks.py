"""``kflow hooks resume TOKEN JSON``: deliver a payload to a workflow waiting on a hook."""

from __future__ import annotations

import argparse
import asyncio
import json

from streams._config import Settings


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``hooks`` and its sub-commands to the ``kflow`` parser."""
    hooks = groups.add_parser("hooks", help="external events for waiting workflows")
    commands = hooks.add_subparsers(title="hooks commands", metavar="COMMAND", parser_class=type(hooks))
    commands.required = True
    resume = commands.add_parser("resume", help="send a payload to the hook waiting on TOKEN")
    resume.add_argument("token", metavar="TOKEN", help='"<run_id>:<hook name>" (or the token on_created gave)')
    resume.add_argument("payload", metavar="JSON", type=_json, help="the payload, as JSON")
    resume.set_defaults(handler=_resume)


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def _resume(args: argparse.Namespace, settings: Settings) -> int:
    from streams._client import Client

    async def send() -> None:
        async with Client(settings=settings) as client:
            await client.resume_hook(args.token, args.payload)

    asyncio.run(send())
    print(f"payload sent to hook {args.token}")
    return 0
