"""``kflow storage migrate``: apply the Cassandra schema migrations (the processor also does this at start)."""

from __future__ import annotations

import argparse
import json

from storage import CassandraConnection, migrate, parse_replication
from streams._settings import Settings


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``storage`` and its sub-commands to the ``kflow`` parser."""
    storage = groups.add_parser("storage", help="the Cassandra keyspace of kflow")
    commands = storage.add_subparsers(title="storage commands", metavar="COMMAND", parser_class=type(storage))
    commands.required = True
    up = commands.add_parser("migrate", help="create the keyspace and apply pending migrations, in order")
    up.add_argument(
        "--replication",
        metavar="REPLICATION",
        type=_replication,
        help="keyspace replication when it is created (wins over KFLOW_CASSANDRA_REPLICATION), as JSON, e.g. "
        '\'{"class": "NetworkTopologyStrategy", "dc1": 3}\', or NetworkTopologyStrategy:dc1=3 '
        "(default: SimpleStrategy, 1)",
    )
    up.add_argument("--json", action="store_true", help="print only {keyspace, applied} as JSON")
    up.set_defaults(handler=_migrate)


def _replication(text: str) -> dict[str, str | int]:
    """``--replication``: JSON or the short form (``storage.parse_replication``); a bad one is a usage error."""
    try:
        return dict(parse_replication(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    with CassandraConnection(settings.cassandra_target()) as conn:
        applied = migrate(conn, settings.keyspace, args.replication)
    if args.json:
        print(json.dumps({"keyspace": settings.keyspace, "applied": applied}))
    else:
        print(f"keyspace {settings.keyspace}: " + (f"applied migrations {applied}" if applied else "up to date"))
    return 0
