"""``kflow dev up|down|status|smoke``: the local Kafka broker(s) + Cassandra."""

from __future__ import annotations

import argparse
import asyncio
import json

from streams._settings import Settings
from streams.cli._errors import EXIT_OK, EXIT_UNREACHABLE
from streams.dev import ADMIN, ROLES, DevStack, export_lines
from streams.dev._layout import MAX_BROKERS

DEMO_METRICS_PORT = 9464
"""Where ``kflow dev demo`` serves the processor's ``/metrics`` by default (the worker's on the next port)."""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dev`` and its sub-commands to the ``kflow`` parser."""
    dev = groups.add_parser("dev", help="local Kafka (KRaft, one or more brokers) and Cassandra from Maven jars")
    commands = dev.add_subparsers(title="dev commands", metavar="COMMAND", parser_class=type(dev))
    commands.required = True
    up = commands.add_parser("up", help="fetch jars once, start every server not running, wait for real round trips")
    up.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for readiness (default 240)")
    up.add_argument(
        "--brokers",
        type=_broker_count,
        metavar="N",
        help="KRaft nodes (broker+controller each); remembered (default: as remembered, else 1)",
    )
    up.add_argument("--kafka-only", action="store_true", help="start the brokers only, not Cassandra (remembered)")
    up.add_argument(
        "--secure",
        action="store_true",
        help="TLS, SCRAM users and ACLs per role on Kafka, TLS and passwords on Cassandra (remembered; "
        "a stack with data: kflow dev down --wipe first); kflow dev env prints the variables",
    )
    up.set_defaults(handler=_up)
    env = commands.add_parser("env", help='the export lines of a shell using the stack (eval "$(kflow dev env)")')
    env.add_argument(
        "--role",
        choices=ROLES,
        default=ADMIN,
        help="the Kafka principal of a secure stack (default admin, the super user)",
    )
    env.set_defaults(handler=_env)
    down = commands.add_parser("down", help="stop every server gracefully")
    down.add_argument("--wipe", action="store_true", help="also delete their data and logs")
    down.set_defaults(handler=_down)
    status = commands.add_parser("status", help="what runs where")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status)
    smoke = commands.add_parser("smoke", help="one kflow record through Kafka and one row through Cassandra")
    smoke.set_defaults(handler=_smoke)
    demo = commands.add_parser("demo", help="run examples.basic end to end (processor + worker + client)")
    demo.add_argument(
        "--metrics-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="the processor serves /metrics on PORT, the worker on PORT+1 "
        f"(default $KFLOW_METRICS_PORT, else {DEMO_METRICS_PORT}; 0: none)",
    )
    demo.set_defaults(handler=_demo)


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {raw!r}") from None
    if not 0 <= port <= 65534:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65534, got {port}")
    return port


def _broker_count(raw: str) -> int:
    try:
        count = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {raw!r}") from None
    if not 1 <= count <= MAX_BROKERS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_BROKERS}, got {count}")
    return count


def _stack(settings: Settings) -> DevStack:
    return DevStack(settings.home, port_offset=settings.dev_port_offset)


def _up(args: argparse.Namespace, settings: Settings) -> int:
    stack = _stack(settings)
    stack.up(
        timeout=args.timeout,
        brokers=args.brokers,
        kafka_only=True if args.kafka_only else None,
        secure=True if args.secure else None,
        acl_prefix=settings.topic_prefix,
    )
    if stack.config.secure:
        for line in export_lines(stack.environment()):
            print(line)
        return 0
    exports = [f"KFLOW_BOOTSTRAP={stack.bootstrap}"]
    if stack.config.cassandra:
        exports.append(f"KFLOW_CASSANDRA={stack.cassandra_contact}")
    print(f"export {' '.join(exports)}")
    return 0


def _env(args: argparse.Namespace, settings: Settings) -> int:
    for line in export_lines(_stack(settings).environment(args.role)):
        print(line)
    return 0


def _down(args: argparse.Namespace, settings: Settings) -> int:
    _stack(settings).down(wipe=args.wipe)
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    servers = _stack(settings).status()
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
    port = args.metrics_port if args.metrics_port is not None else settings.metrics_port
    port = DEMO_METRICS_PORT if port is None else port  # 0 (option or variable): no metrics
    asyncio.run(run_example(settings, "examples.basic", registry, example.scenario, metrics_port=port or None))
    return 0
