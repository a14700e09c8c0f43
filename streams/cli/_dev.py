"""``kflow dev up|down|status|smoke``: the local Kafka + Cassandra pair."""

from __future__ import annotations

import argparse
import asyncio
import json

from streams._settings import Settings
from streams.cli._errors import EXIT_OK, EXIT_UNREACHABLE
from streams.dev import DevStack


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dev`` and its sub-commands to the ``kflow`` parser."""
    dev = groups.add_parser("dev", help="local single-node Kafka (KRaft) and Cassandra from Maven jars")
    commands = dev.add_subparsers(title="dev commands", metavar="COMMAND", parser_class=type(dev))
    commands.required = True
    up = commands.add_parser("up", help="fetch jars once, start both servers, wait for real round trips")
    up.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for readiness (default 240)")
    up.set_defaults(handler=_up)
    down = commands.add_parser("down", help="stop both servers gracefully")
    down.add_argument("--wipe", action="store_true", help="also delete their data and logs")
    down.set_defaults(handler=_down)
    status = commands.add_parser("status", help="what runs where")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status)
    smoke = commands.add_parser("smoke", help="one kflow record through Kafka and one row through Cassandra")
    smoke.set_defaults(handler=_smoke)
    demo = commands.add_parser("demo", help="run examples.basic end to end (processor + worker + client)")
    demo.set_defaults(handler=_demo)


def _up(args: argparse.Namespace, settings: Settings) -> int:
    DevStack(settings.home).up(timeout=args.timeout)
    return 0


def _down(args: argparse.Namespace, settings: Settings) -> int:
    DevStack(settings.home).down(wipe=args.wipe)
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    servers = DevStack(settings.home).status()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "running": s.pid is not None,
                        "pid": s.pid,
                        "ports": list(s.ports),
                        "rss_mib": s.rss_mib,
                        "run_dir": str(s.run_dir),
                    }
                    for s in servers
                ],
                indent=2,
            )
        )
    else:
        for server in servers:
            print(server.describe())
    return EXIT_OK if all(s.pid is not None for s in servers) else EXIT_UNREACHABLE


def _smoke(args: argparse.Namespace, settings: Settings) -> int:
    from streams.dev import smoke_roundtrip  # needs the schemas codec; keep other commands light

    for line in asyncio.run(smoke_roundtrip(settings)):
        print(line)
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    import importlib

    from streams.cli._app import load_registry
    from streams.dev import run_example

    registry = load_registry("examples.basic")  # also makes the current directory importable
    example = importlib.import_module("examples.basic")
    asyncio.run(run_example(settings, "examples.basic", registry, example.scenario))
    return 0
